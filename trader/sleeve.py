"""A sleeve (one strategy with its parameters on one series, with what it spends per entry and how it orders),
its ``TRADER_SLEEVES`` spelling, and the risk configuration the loop applies to every sleeve (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from trader.protection import ProtectionSettings
from trader.risk.killswitch import KillLimits, KillPolicy
from trader.strategies.base import Strategy


@dataclass(frozen=True, kw_only=True)
class SleeveSpec:
    """One sleeve as configured: an item of ``TRADER_SLEEVES`` (``SYMBOL:interval:strategy[:allocation]``, parsed
    in one place, ``parse``) or a ``[[sleeve]]`` of the sleeves file (``trader.sleeves_file``), which may also
    give the sleeve its own name, strategy parameters and order settings."""

    symbol: str  # upper case
    interval: str
    strategy: str
    allocation: Decimal | None = None  # quote per entry; None: TRADER_ORDER_QUOTE
    params: dict[str, Any] | None = None  # None: TRADER_STRATEGY_PARAMS of the strategy (or its defaults)
    label: str | None = None  # the sleeve's name in the records; None: SYMBOL:interval:strategy
    orders: OrderSettings | None = None  # None: TRADER_ORDER_TYPE, TRADER_LIMIT_TIF, TRADER_LIMIT_OFFSET_BPS
    protection: ProtectionSettings | None = None  # stop-loss / take-profit / trailing stop held by the exchange

    @property
    def name(self) -> str:
        """The sleeve's name in every record (client order ids, ``trading.*`` rows): its own, else
        ``SYMBOL:interval:strategy``."""
        return self.label or f"{self.symbol}:{self.interval}:{self.strategy}"

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


@dataclass(frozen=True, kw_only=True)
class OrderSettings:
    """How one sleeve orders, overriding the trader's ``TRADER_ORDER_TYPE`` etc. (``None``: the trader's)."""

    order_type: str | None = None  # MARKET | LIMIT
    limit_tif: str | None = None  # GTC | IOC
    limit_offset_bps: Decimal | None = None


@dataclass(kw_only=True)
class Sleeve:
    name: str  # SYMBOL:interval:strategy, or the name the sleeves file gives it
    symbol: str
    interval: str
    strategy: Strategy
    allocation: Decimal = Decimal("1000")  # quote spent per entry
    orders: OrderSettings = field(default_factory=OrderSettings)
    protection: ProtectionSettings | None = None  # None: no protection placed
    halted: str | None = None
    specs: tuple = ()  # the strategy's feature specs, as registered at start

    def shown(self) -> str:
        """For the banner: ``BTCUSDT:1m:sma_cross (1000 fast=10 slow=30)``."""
        return f"{self.name} ({self.allocation}{''.join(f' {k}={v}' for k, v in self.strategy.params.items())})"


@dataclass(frozen=True)
class RiskConfig:
    rules: tuple = ()  # exposure, order rate, staleness rules (trader.risk.*)
    kill: KillLimits = KillLimits()
    staleness_basis: str = "close_time"  # or "ingested_at" (replays: when the pipeline stored the candle)
    order_type: str = "MARKET"  # entries and exits: MARKET | LIMIT
    limit_tif: str = "GTC"
    limit_offset_bps: Decimal = Decimal(0)
    kill_policy: KillPolicy = KillPolicy()  # what REDUCING and HALTED do besides blocking (flatten, cancel)


def sleeve_risk(risk: RiskConfig, sleeve: Sleeve) -> RiskConfig:
    """``risk`` with the sleeve's own order settings in place of the trader's."""
    own = {k: v for k, v in vars(sleeve.orders).items() if v is not None}
    return replace(risk, **own) if own else risk
