"""Binance symbol filters applied before submit (pure): PRICE_FILTER, LOT_SIZE, MARKET_LOT_SIZE, MIN_NOTIONAL, NOTIONAL.

Quantities are rounded DOWN to the step (never spend more than asked); limit prices are rounded to the
tick in the safe direction (BUY down, SELL up); a stop price to the nearest tick below (SELL stop) or
above (BUY stop). What cannot be made valid is refused with ``FilterRejected("Filter failure: NAME ...")``,
the same name Binance would answer with -1013. A value of ``0`` disables that part of a filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from trader.errors import FilterRejected, InsufficientBalance

_Z = Decimal(0)


def round_to_step(value: Decimal, step: Decimal, rounding: str = ROUND_DOWN) -> Decimal:
    """``value`` rounded to a multiple of ``step`` (unchanged when ``step`` is 0)."""
    if not step:
        return value
    return ((value / step).to_integral_value(rounding=rounding) * step).quantize(step)


@dataclass(frozen=True)
class Lot:
    min_qty: Decimal = _Z
    max_qty: Decimal = _Z
    step: Decimal = _Z


@dataclass(frozen=True)
class SymbolRules:
    symbol: str
    min_price: Decimal = _Z
    max_price: Decimal = _Z
    tick: Decimal = _Z
    lot: Lot = Lot()
    market_lot: Lot | None = None
    min_notional: Decimal = _Z
    min_notional_market: bool = True
    max_notional: Decimal = _Z
    max_notional_market: bool = False
    notional_filter: str = "NOTIONAL"  # or the legacy MIN_NOTIONAL: the name a failure is reported under

    @classmethod
    def from_exchange_info(cls, info: dict) -> SymbolRules:
        """From one ``symbols[]`` entry of ``GET /api/v3/exchangeInfo``."""
        f = {x["filterType"]: x for x in info.get("filters", [])}
        d = Decimal
        price, lot, mlot = f.get("PRICE_FILTER", {}), f.get("LOT_SIZE", {}), f.get("MARKET_LOT_SIZE")
        notional, legacy = f.get("NOTIONAL"), f.get("MIN_NOTIONAL")
        kw: dict = {}
        if notional:
            kw = dict(min_notional=d(notional["minNotional"]), min_notional_market=bool(notional.get("applyMinToMarket", True)),
                      max_notional=d(notional.get("maxNotional", "0")), max_notional_market=bool(notional.get("applyMaxToMarket", False)))
        elif legacy:
            kw = dict(min_notional=d(legacy["minNotional"]), min_notional_market=bool(legacy.get("applyToMarket", True)),
                      notional_filter="MIN_NOTIONAL")
        return cls(
            symbol=info["symbol"], min_price=d(price.get("minPrice", "0")), max_price=d(price.get("maxPrice", "0")),
            tick=d(price.get("tickSize", "0")),
            lot=Lot(d(lot.get("minQty", "0")), d(lot.get("maxQty", "0")), d(lot.get("stepSize", "0"))),
            market_lot=Lot(d(mlot["minQty"]), d(mlot["maxQty"]), d(mlot["stepSize"])) if mlot else None, **kw,
        )


@dataclass(frozen=True)
class PreparedOrder:
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None


def prepare_order(rules: SymbolRules, side: str, type_: str, quantity: Decimal, ref_price: Decimal,
                  price: Decimal | None = None, stop_price: Decimal | None = None) -> PreparedOrder:
    """Round ``quantity``/``price``/``stop_price`` to the filters, or raise ``FilterRejected``."""
    buy = side == "BUY"
    if price is not None:
        price = _check_price(rules, round_to_step(price, rules.tick, ROUND_FLOOR if buy else ROUND_CEILING), "price")
    if stop_price is not None:
        stop_price = _check_price(rules, round_to_step(stop_price, rules.tick, ROUND_CEILING if buy else ROUND_FLOOR), "stopPrice")
    qty = _check_lot(rules.lot, quantity, "LOT_SIZE")
    if type_ in ("MARKET", "STOP_LOSS", "TAKE_PROFIT") and rules.market_lot is not None:
        qty = _check_lot(rules.market_lot, qty, "MARKET_LOT_SIZE")
    _check_notional(rules, type_, qty, price if price is not None else ref_price)
    return PreparedOrder(qty, price, stop_price)


def _check_price(rules: SymbolRules, p: Decimal, what: str) -> Decimal:
    if (rules.min_price and p < rules.min_price) or (rules.max_price and p > rules.max_price) or p <= 0:
        raise FilterRejected(f"Filter failure: PRICE_FILTER ({what} {p} outside [{rules.min_price}, {rules.max_price}])", -1013)
    return p


def _check_lot(lot: Lot, quantity: Decimal, name: str) -> Decimal:
    qty = round_to_step(quantity, lot.step)
    if qty <= 0 or (lot.min_qty and qty < lot.min_qty):
        raise FilterRejected(f"Filter failure: {name} (quantity {quantity} rounds to {qty}, below minQty {lot.min_qty})", -1013)
    if lot.max_qty and qty > lot.max_qty:
        raise FilterRejected(f"Filter failure: {name} (quantity {qty} above maxQty {lot.max_qty})", -1013)
    return qty


def _check_notional(rules: SymbolRules, type_: str, qty: Decimal, price: Decimal) -> None:
    market = type_ in ("MARKET", "STOP_LOSS", "TAKE_PROFIT")
    notional = qty * price
    if rules.min_notional and (not market or rules.min_notional_market) and notional < rules.min_notional:
        raise FilterRejected(f"Filter failure: {rules.notional_filter} (notional {notional} below minNotional {rules.min_notional})", -1013)
    if rules.max_notional and (not market or rules.max_notional_market) and notional > rules.max_notional:
        raise FilterRejected(f"Filter failure: NOTIONAL (notional {notional} above maxNotional {rules.max_notional})", -1013)


def is_dust(rules: SymbolRules, quantity: Decimal, price: Decimal) -> bool:
    """A position too small to sell under the filters (e.g. what commission paid in the base asset leaves)."""
    qty = round_to_step(quantity, rules.lot.step)
    return qty <= 0 or qty < rules.lot.min_qty or (rules.min_notional > 0 and qty * price < rules.min_notional)


def check_balance(side: str, quantity: Decimal, price: Decimal, free_quote: Decimal, free_base: Decimal,
                  fee_bps: Decimal = _Z, base: str = "base", quote: str = "quote") -> None:
    """Refuse locally what the exchange would refuse for lack of balance (BUY: notional plus fee)."""
    if side == "BUY":
        need = quantity * price * (1 + fee_bps / Decimal(10_000))
        if need > free_quote:
            raise InsufficientBalance(f"insufficient balance: BUY needs {need} {quote}, free {free_quote}")
    elif quantity > free_base:
        raise InsufficientBalance(f"insufficient balance: SELL needs {quantity} {base}, free {free_base}")
