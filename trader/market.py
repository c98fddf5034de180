"""The candles an order fills against, and the seam a paper broker reads them through (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Candle:
    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal | None = None  # the path's last trade (a trailing stop's high-then-close rule); None: unknown


# (symbol, interval, after open ms, limit, sleeve) -> the candles opening after, that the sleeve has reached
CandlesAfter = Callable[[str, str, int, int, str], list[Candle]]
