"""A sleeve (one strategy on one series, with what it spends per entry), its ``TRADER_SLEEVES`` spelling, and
the risk configuration the loop applies to every sleeve (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trader.risk.killswitch import KillLimits
from trader.strategies.base import Strategy


@dataclass(frozen=True, kw_only=True)
class SleeveSpec:
    """One item of ``TRADER_SLEEVES``: ``SYMBOL:interval:strategy[:allocation]``, parsed in one place (``parse``)."""

    symbol: str  # upper case
    interval: str
    strategy: str
    allocation: Decimal | None = None  # quote per entry; None: TRADER_ORDER_QUOTE

    @property
    def name(self) -> str:
        """The sleeve's name in every record: ``SYMBOL:interval:strategy``."""
        return f"{self.symbol}:{self.interval}:{self.strategy}"

    @classmethod
    def parse(cls, text: str) -> SleeveSpec:
        """``ValueError`` naming the expected shape when ``text`` is not one (intervals and strategies are
        checked by the settings, which know the valid ones)."""
        parts = text.strip().split(":")
        if len(parts) not in (3, 4) or not all(parts[:3]) or (len(parts) == 4 and not _positive(parts[3])):
            raise ValueError(f"sleeve {text!r} must look like SYMBOL:interval:strategy[:allocation], e.g. BTCUSDT:1m:sma_cross:1000")
        return cls(symbol=parts[0].upper(), interval=parts[1], strategy=parts[2],
                   allocation=Decimal(parts[3]) if len(parts) == 4 else None)


def _positive(text: str) -> bool:
    try:
        return Decimal(text) > 0
    except ArithmeticError:
        return False


@dataclass(kw_only=True)
class Sleeve:
    name: str  # SYMBOL:interval:strategy
    symbol: str
    interval: str
    strategy: Strategy
    allocation: Decimal = Decimal("1000")  # quote spent per entry
    halted: str | None = None
    specs: tuple = ()  # the strategy's feature specs, as registered at start


@dataclass(frozen=True)
class RiskConfig:
    rules: tuple = ()  # exposure, order rate, staleness rules (trader.risk.*)
    kill: KillLimits = KillLimits()
    staleness_basis: str = "close_time"  # or "ingested_at" (replays: when the pipeline stored the candle)
    order_type: str = "MARKET"  # entries and exits: MARKET | LIMIT
    limit_tif: str = "GTC"
    limit_offset_bps: Decimal = Decimal(0)
