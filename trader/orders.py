"""Order intents and their deterministic client order ids (pure)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal


@dataclass(frozen=True)
class OrderIntent:
    sleeve: str
    symbol: str
    side: str  # BUY | SELL
    quantity: Decimal
    signal_open_time_ms: int
    type: str = "MARKET"

    @property
    def client_order_id(self) -> str:
        return client_order_id(self.sleeve, self.signal_open_time_ms, self.side)


def client_order_id(sleeve: str, open_time_ms: int, intent: str) -> str:
    """Same (sleeve, candle, intent) -> same id, so a retry or a restart can never order twice.

    Fits Binance's ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$``: ``kp-<10 hex of sleeve>-<open ms>-<B|S>``.
    """
    digest = hashlib.sha256(sleeve.encode()).hexdigest()[:10]
    return f"kp-{digest}-{open_time_ms}-{intent[0]}"


def round_down(quantity: Decimal, step: Decimal) -> Decimal:
    """Round a quantity down to a multiple of ``step`` (Binance LOT_SIZE)."""
    return (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step
