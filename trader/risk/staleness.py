"""Stale data (pure): when the newest closed candle is older than ``max_intervals`` intervals, no new entries.

Exits stay allowed: refusing to sell on stale data would keep risk on, not take it off.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StaleData:
    max_intervals: float = 2.0  # 0: off
    name: str = "stale_data"

    def check(self, ctx) -> str | None:
        if not self.max_intervals or not ctx.is_entry:
            return None
        if ctx.data_as_of_ms is None:
            return "no closed candle yet"
        age = ctx.now_ms - ctx.data_as_of_ms
        if age > self.max_intervals * ctx.interval_ms:
            return f"newest closed candle is {age / 1000:.0f}s old (> {self.max_intervals:g} intervals)"
        return None
