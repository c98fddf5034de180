"""A sleeve (one strategy on one series, with what it spends per entry) and the risk configuration the loop
applies to every sleeve (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.risk.killswitch import KillLimits
from trader.strategies.base import Strategy


@dataclass
class Sleeve:
    name: str  # SYMBOL:interval:strategy
    symbol: str
    interval: str
    strategy: Strategy
    allocation: Decimal = Decimal("1000")  # quote spent per entry
    halted: str | None = None


@dataclass(frozen=True)
class RiskConfig:
    rules: tuple = ()  # exposure, order rate, staleness rules (trader.risk.*)
    kill: KillLimits = KillLimits()
    staleness_basis: str = "close_time"  # or "ingested_at" (replays: when the pipeline stored the candle)
    order_type: str = "MARKET"  # entries and exits: MARKET | LIMIT
    limit_tif: str = "GTC"
    limit_offset_bps: Decimal = Decimal(0)
