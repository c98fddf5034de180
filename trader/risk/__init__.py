"""Risk rules (pure): each rule looks at a proposed order in its context and blocks it with a reason, or not.

One rule per module, each configurable and small: ``exposure`` (max position notional per symbol and in
total), ``order_rate`` (max orders per window), ``staleness`` (no new entries on stale data),
``killswitch`` (daily loss / drawdown -> REDUCING / HALTED), ``symbol_status`` (the exchange trades the symbol). The loop records every block as a risk event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from trader.risk.killswitch import KillState


@dataclass(frozen=True, kw_only=True)
class RiskContext:
    """Everything a rule may look at for one proposed order (plain data; times in epoch ms)."""

    sleeve: str
    symbol: str
    side: str
    is_entry: bool  # opens or grows a position (long-only spot: a BUY)
    notional: Decimal
    symbol_exposure: Decimal = Decimal(0)  # current notional held in ``symbol`` by all sleeves
    total_exposure: Decimal = Decimal(0)
    now_ms: int = 0
    recent_orders_ms: tuple[int, ...] = field(default_factory=tuple)
    data_as_of_ms: int | None = None  # when the newest closed candle of the series ended (or arrived)
    interval_ms: int = 60_000
    kill_state: KillState = KillState.ACTIVE
    symbol_status: str = "TRADING"  # exchangeInfo status of ``symbol`` (CANCEL_ONLY, HALT, ...: no new orders)


@dataclass(frozen=True)
class RiskBlock:
    rule: str
    reason: str


class RiskRule(Protocol):
    name: str

    def check(self, ctx: RiskContext) -> str | None:
        """A reason to block the order, or ``None``."""


def first_block(rules: list[RiskRule], ctx: RiskContext) -> RiskBlock | None:
    """The first rule that blocks ``ctx`` (rules are checked in order), or ``None``."""
    for rule in rules:
        reason = rule.check(ctx)
        if reason:
            return RiskBlock(rule.name, reason)
    return None
