"""Symbol status (pure): no new order, entry or exit, while the exchange does not trade the symbol.

Binance's ``CANCEL_ONLY`` (2026) and ``HALT``/``BREAK``/``END_OF_DAY`` take no new orders; sending one only earns
a rejection. The reason names the status, so the recorded risk block says why nothing went out.
"""

from __future__ import annotations

from dataclasses import dataclass

from trader.symbols import status_block


@dataclass(frozen=True)
class SymbolStatusRule:
    name: str = "symbol_status"

    def check(self, ctx) -> str | None:
        return status_block(ctx.symbol, ctx.symbol_status)
