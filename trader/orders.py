"""Order intents, their deterministic client order ids, fills and order reports (pure)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

OPEN_STATUSES = ("PENDING_SUBMIT", "NEW", "PARTIALLY_FILLED")
FINAL_STATUSES = ("FILLED", "CANCELED", "REJECTED", "EXPIRED", "EXPIRED_IN_MATCH")
_INTENT_CODES = {"BUY": "B", "SELL": "S", "STOP_LOSS": "L"}


@dataclass(frozen=True)
class OrderIntent:
    sleeve: str
    symbol: str
    side: str  # BUY | SELL
    quantity: Decimal
    signal_open_time_ms: int
    type: str = "MARKET"  # MARKET | LIMIT | STOP_LOSS
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None  # GTC | IOC for LIMIT
    intent: str = ""  # what the order is for; defaults to the side ("STOP_LOSS" for a protective stop)
    interval: str = ""

    @property
    def client_order_id(self) -> str:
        return client_order_id(self.sleeve, self.signal_open_time_ms, self.intent or self.side)


@dataclass(frozen=True)
class Fill:
    trade_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    filled_at_ms: int = 0


@dataclass(frozen=True)
class OrderReport:
    """What the venue says about one order right now."""

    client_order_id: str
    status: str  # NEW | PARTIALLY_FILLED | FILLED | CANCELED | REJECTED | EXPIRED
    exchange_order_id: str | None = None
    executed_qty: Decimal = Decimal(0)
    fills: tuple[Fill, ...] = field(default_factory=tuple)


def client_order_id(sleeve: str, open_time_ms: int, intent: str) -> str:
    """Same (sleeve, candle, intent) -> same id, so a retry or a restart can never order twice.

    Fits Binance's ``^[a-zA-Z0-9-_]{1,36}$``: ``kp-<10 hex of sleeve>-<open ms>-<B|S|L>`` (29 chars).
    """
    digest = hashlib.sha256(sleeve.encode()).hexdigest()[:10]
    return f"kp-{digest}-{open_time_ms}-{_INTENT_CODES.get(intent, intent[:1])}"


def round_down(quantity: Decimal, step: Decimal) -> Decimal:
    """Round a quantity down to a multiple of ``step`` (Binance LOT_SIZE)."""
    return (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step
