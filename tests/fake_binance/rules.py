"""What a symbol lets an order do: status, flags and filters (binance-protective-orders.md 1.2, spot reference 3.2).

Order of checks, as the reference's checklist (6.3) suggests: symbol status, then flags (``orderTypes``,
``allowTrailingStop``, ``quoteOrderQtyMarketAllowed``, STP mode; ``-2010`` ``... not supported for this symbol.``),
then filters (``-1013 Filter failure: NAME``). No I/O.
"""

from __future__ import annotations

from decimal import Decimal

from tests.fake_binance.errors import (
    INVALID_MESSAGE, MSG_CLOSED, MSG_STP_NOT_ALLOWED, MSG_TRAILING_NOT_SUPPORTED, FakeBinanceError, filter_failure, rejected,
)
from tests.fake_binance.market import SymbolInfo
from tests.fake_binance.triggers import STOP_TYPES, triggers_from_above

TYPE_TEXT = {"MARKET": "Market orders", "LIMIT": "Limit orders", "LIMIT_MAKER": "Limit maker orders",
             "STOP_LOSS": "Stop loss orders", "STOP_LOSS_LIMIT": "Stop loss limit orders",
             "TAKE_PROFIT": "Take profit orders", "TAKE_PROFIT_LIMIT": "Take profit limit orders"}
OPEN = ("NEW", "PARTIALLY_FILLED")


def check_trading(info: SymbolInfo) -> None:
    """New orders only while ``TRADING``: ``HALT``, ``BREAK``, ``END_OF_DAY`` and ``CANCEL_ONLY`` answer "Market is closed."."""
    if info.status != "TRADING":
        raise rejected(MSG_CLOSED)


def check_gates(info: SymbolInfo, spec: dict) -> None:
    if spec["type"] not in info.order_types:
        raise rejected(f"{TYPE_TEXT[spec['type']]} are not supported for this symbol.")
    if spec["trailingDelta"] is not None and not info.allow_trailing_stop:
        raise rejected(MSG_TRAILING_NOT_SUPPORTED)
    if spec["quoteOrderQty"] is not None and not info.quote_order_qty_market_allowed:
        raise rejected("Quote order qty market orders are not support for this symbol.")
    if spec["stp"] not in info.allowed_stp:
        raise FakeBinanceError(400, INVALID_MESSAGE, MSG_STP_NOT_ALLOWED)


def check_filters(info: SymbolInfo, spec: dict, ref_price: Decimal) -> None:
    """Raise -1013 ``Filter failure: NAME`` for the first filter the order breaks."""
    type_, qty, price = spec["type"], spec["qty"], spec["price"]
    pf = info.filter("PRICE_FILTER")
    for p in (price, spec["stop"]):
        if pf and p is not None:
            lo, hi, tick = (Decimal(pf[k]) for k in ("minPrice", "maxPrice", "tickSize"))
            if (lo and p < lo) or (hi and p > hi) or (tick and p % tick != 0):
                raise filter_failure("PRICE_FILTER")
    market_like = type_ in ("MARKET", "STOP_LOSS", "TAKE_PROFIT")
    for name in ("LOT_SIZE", "MARKET_LOT_SIZE") if type_ == "MARKET" else ("LOT_SIZE",):
        f = info.filter(name)
        if f:
            lo, hi, step = (Decimal(f[k]) for k in ("minQty", "maxQty", "stepSize"))
            if (lo and qty < lo) or (hi and qty > hi) or (step and qty % step != 0):
                raise filter_failure(name)
    notional = qty * (price if price is not None and not market_like else spec["stop"] or ref_price)
    f = info.filter("NOTIONAL")
    if f:
        if (not market_like or f.get("applyMinToMarket", True)) and notional < Decimal(f["minNotional"]):
            raise filter_failure("NOTIONAL")
        if (not market_like or f.get("applyMaxToMarket", False)) and notional > Decimal(f["maxNotional"]):
            raise filter_failure("NOTIONAL")
    f = info.filter("MIN_NOTIONAL")
    if f and (not market_like or f.get("applyToMarket", True)) and notional < Decimal(f["minNotional"]):
        raise filter_failure("MIN_NOTIONAL")
    check_trailing_delta(info, spec)


def check_trailing_delta(info: SymbolInfo, spec: dict) -> None:
    """``TRAILING_DELTA``: the Above bounds for STOP_LOSS* BUY and TAKE_PROFIT* SELL, the Below bounds otherwise."""
    f, delta = info.filter("TRAILING_DELTA"), spec["trailingDelta"]
    if not f or delta is None:
        return
    which = "Above" if triggers_from_above(spec["type"], spec["side"]) else "Below"
    if not int(f[f"minTrailing{which}Delta"]) <= delta <= int(f[f"maxTrailing{which}Delta"]):
        raise filter_failure("TRAILING_DELTA")


def check_counts(info: SymbolInfo, open_orders: list[dict], new_orders: list[dict], open_lists: int, new_lists: int) -> None:
    """``MAX_NUM_ORDERS``, ``MAX_NUM_ALGO_ORDERS`` (the four stop types) and ``MAX_NUM_ORDER_LISTS`` per symbol."""
    counts = (("MAX_NUM_ORDERS", "maxNumOrders", len(open_orders) + len(new_orders)),
              ("MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders",
               sum(o["type"] in STOP_TYPES for o in [*open_orders, *new_orders])),
              ("MAX_NUM_ORDER_LISTS", "maxNumOrderLists", open_lists + new_lists))
    for name, field, n in counts:
        f = info.filter(name)
        if f and n > int(f[field]) and (name != "MAX_NUM_ORDER_LISTS" or new_lists):
            raise filter_failure(name)
