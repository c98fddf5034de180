"""Max order rate (pure): at most ``max_orders`` orders per ``window_s`` seconds, counted from the ledger."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MaxOrderRate:
    max_orders: int = 10
    window_s: int = 60
    name: str = "max_order_rate"

    def check(self, ctx) -> str | None:
        if not self.max_orders:
            return None
        since = ctx.now_ms - self.window_s * 1000
        recent = sum(1 for t in ctx.recent_orders_ms if t > since)
        if recent >= self.max_orders:
            return f"{recent} orders in the last {self.window_s}s (max {self.max_orders})"
        return None
