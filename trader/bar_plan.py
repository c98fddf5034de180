"""The order one signal asks for, from one snapshot of the ledger and the venue's terms (pure).

``plan_order`` is the trader's per-bar arithmetic with no I/O: sizing (the sleeve's allocation, the free
balance net of fees, a limit offset), the exchange filters and the balance check, then the risk rules.
The loop loads the ``BarSnapshot`` before it and records what the plan says after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.errors import FatalError, InsufficientBalance
from trader.filters import SymbolRules, check_balance, is_dust, prepare_order
from trader.orders import OrderIntent
from trader.risk import RiskBlock, RiskContext, RiskRule, first_block
from trader.risk.killswitch import KillState
from trader.sleeve import RiskConfig, Sleeve, sleeve_risk
from trader.strategies.base import Action
from trader.symbols import split_symbol

_BPS = Decimal(10_000)


@dataclass(frozen=True, kw_only=True)
class BarSnapshot:
    """What the ledger and the venue say, read once for one sleeve's bar (money in the quote asset)."""

    held: Decimal  # the sleeve's position
    free_quote: Decimal
    free_base: Decimal
    rules: SymbolRules
    fee_bps: Decimal
    exposure: dict[str, Decimal]  # notional per symbol, all sleeves of the mode
    recent_orders_ms: tuple[int, ...]  # orders of the mode in the last hour
    data_as_of_ms: int | None  # how fresh the series is: when its newest closed candle ended (or arrived), not a candle time
    now_ms: int
    kill: KillState
    symbol_status: str = "TRADING"


@dataclass(frozen=True, kw_only=True)
class OrderPlan:
    """The order to record (``None``: none), the reason as recorded with the signal, and what blocked it."""

    intent: OrderIntent | None
    reason: str
    block: RiskBlock | None = None  # an exchange filter (rule ``exchange_filter``) or a risk rule


def plan_order(snap: BarSnapshot, *, sleeve: Sleeve, action: Action, reason: str, open_time_ms: int, close: Decimal,
               interval_ms: int, risk: RiskConfig, rules: list[RiskRule], mode: str) -> OrderPlan:
    """Size the order ``action`` asks for, fit it to the exchange filters and the balance, check the risk rules."""
    base, quote = split_symbol(sleeve.symbol)
    risk = sleeve_risk(risk, sleeve)
    long = snap.held > 0 and not is_dust(snap.rules, snap.held, close)
    if action is Action.BUY and long or action is Action.SELL and not long:
        return OrderPlan(intent=None, reason=f"{reason}; {'already long' if long else 'nothing to sell'}")
    price = limit_price(risk, action, close)
    raw_qty = (min(sleeve.allocation, snap.free_quote / (1 + snap.fee_bps / _BPS)) / (price or close)
               if action is Action.BUY else snap.held)
    try:
        if action is Action.BUY and snap.free_quote <= 0:
            raise InsufficientBalance(f"insufficient balance: no free {quote}")
        prepared = prepare_order(snap.rules, action.value, risk.order_type, raw_qty, close, price)
        check_balance(action.value, prepared.quantity, prepared.price or close, snap.free_quote, snap.free_base,
                      snap.fee_bps, base, quote)
    except FatalError as err:
        return _blocked(reason, RiskBlock("exchange_filter", str(err)))
    intent = OrderIntent(sleeve=sleeve.name, symbol=sleeve.symbol, side=action.value, quantity=prepared.quantity,
                         open_time_ms=open_time_ms, type=risk.order_type, price=prepared.price,
                         time_in_force=risk.limit_tif if risk.order_type == "LIMIT" else None, interval=sleeve.interval,
                         mode=mode)
    block = first_block(rules, risk_context(snap, sleeve=sleeve, intent=intent, close=close, interval_ms=interval_ms))
    return _blocked(reason, block) if block is not None else OrderPlan(intent=intent, reason=reason)


def risk_context(snap: BarSnapshot, *, sleeve: Sleeve, intent: OrderIntent, close: Decimal, interval_ms: int) -> RiskContext:
    return RiskContext(sleeve=sleeve.name, symbol=sleeve.symbol, side=intent.side, is_entry=intent.side == "BUY",
                       notional=intent.quantity * close, symbol_exposure=snap.exposure.get(sleeve.symbol, Decimal(0)),
                       total_exposure=sum(snap.exposure.values(), Decimal(0)), now_ms=snap.now_ms,
                       recent_orders_ms=snap.recent_orders_ms, data_as_of_ms=snap.data_as_of_ms, interval_ms=interval_ms,
                       kill_state=snap.kill, symbol_status=snap.symbol_status)


def limit_price(risk: RiskConfig, action: Action, close: Decimal) -> Decimal | None:
    """A LIMIT order's price: ``limit_offset_bps`` better than the signal close (``None`` for MARKET)."""
    if risk.order_type != "LIMIT":
        return None
    sign = -1 if action is Action.BUY else 1
    return close * (1 + sign * risk.limit_offset_bps / _BPS)


def _blocked(reason: str, block: RiskBlock) -> OrderPlan:
    return OrderPlan(intent=None, reason=f"{reason}; blocked by {block.rule}: {block.reason}", block=block)
