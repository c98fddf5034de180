"""Max position notional per symbol and in total (pure). Only entries are limited; exits always reduce."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class MaxExposure:
    per_symbol: Decimal = Decimal(0)  # 0: no limit
    total: Decimal = Decimal(0)
    name: str = "max_exposure"

    def check(self, ctx) -> str | None:
        if not ctx.is_entry:
            return None
        if self.per_symbol and ctx.symbol_exposure + ctx.notional > self.per_symbol:
            return f"{ctx.symbol} notional {ctx.symbol_exposure + ctx.notional:.2f} would exceed {self.per_symbol}"
        if self.total and ctx.total_exposure + ctx.notional > self.total:
            return f"total notional {ctx.total_exposure + ctx.notional:.2f} would exceed {self.total}"
        return None
