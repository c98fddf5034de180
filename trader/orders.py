"""Order intents, their deterministic client order ids, fills and order reports (pure)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

OPEN_STATUSES = ("PENDING_SUBMIT", "NEW", "PARTIALLY_FILLED", "PENDING_NEW")  # PENDING_NEW: an OTO leg waiting for its entry
FINAL_STATUSES = ("FILLED", "CANCELED", "REJECTED", "EXPIRED", "EXPIRED_IN_MATCH")
_INTENT_CODES = {"BUY": "B", "SELL": "S", "STOP_LOSS": "L", "FLATTEN": "F"}  # protection legs: trader.protection ids


@dataclass(frozen=True, kw_only=True)
class OrderIntent:
    sleeve: str
    symbol: str
    side: str  # BUY | SELL
    quantity: Decimal
    open_time_ms: int  # the candle the order acts on (stored as trading.orders.signal_open_time)
    type: str = "MARKET"  # MARKET | LIMIT | STOP_LOSS
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str | None = None  # GTC | IOC for LIMIT
    trailing_delta: int | None = None  # bips, for a trailing stop
    list_id: str = ""  # the order list (OCO) a protection leg belongs to
    intent: str = ""  # what the order is for; defaults to the side ("STOP_LOSS" for a protective stop, "FLATTEN" for
    # the kill switch's exit)
    interval: str = ""
    mode: str = ""  # paper | testnet | demo | live: part of the client order id
    stored_id: str = ""  # the id the ledger recorded (orders from before ids carried the mode keep theirs)

    @property
    def client_order_id(self) -> str:
        return self.stored_id or client_order_id(self.sleeve, self.open_time_ms, self.intent or self.side, self.mode)


@dataclass(frozen=True, kw_only=True)
class Fill:
    trade_id: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    filled_at_ms: int = 0


@dataclass(frozen=True, kw_only=True)
class OrderReport:
    """What the venue says about one order right now."""

    client_order_id: str
    status: str  # NEW | PARTIALLY_FILLED | FILLED | CANCELED | REJECTED | EXPIRED
    exchange_order_id: str | None = None
    executed_qty: Decimal = Decimal(0)
    fills: tuple[Fill, ...] = field(default_factory=tuple)
    expiry_reason: str | None = None  # Binance's expiryReason of an EXPIRED order (2026), when the report carries it


_MODE_CODES = {"paper": "p", "testnet": "t", "demo": "d", "live": "l"}


def client_order_id(sleeve: str, open_time_ms: int, intent: str, mode: str) -> str:
    """Same (mode, sleeve, candle, intent) -> same id, so a retry or a restart can never order twice, and
    the same sleeve in another mode never shares an id (nor reads another mode's order as its own).

    Fits Binance's ``^[a-zA-Z0-9-_]{1,36}$``: ``kp-<p|t|d|l>-<10 hex of mode:sleeve>-<open ms>-<B|S|L|F>`` (31 chars).
    """
    if mode not in _MODE_CODES:
        raise ValueError(f"client order id needs a trading mode ({', '.join(_MODE_CODES)}), got {mode!r}")
    digest = hashlib.sha256(f"{mode}:{sleeve}".encode()).hexdigest()[:10]
    return f"kp-{_MODE_CODES[mode]}-{digest}-{open_time_ms}-{_INTENT_CODES.get(intent, intent[:1])}"


def round_down(quantity: Decimal, step: Decimal) -> Decimal:
    """Round a quantity down to a multiple of ``step`` (Binance LOT_SIZE)."""
    return (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step
