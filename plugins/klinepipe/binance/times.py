"""Time on the Binance wire: epoch milliseconds UTC, and the datetimes and ISO 8601 texts people give (pure).

Binance times are epoch milliseconds UTC everywhere (``E``, ``t``, ``T``, REST rows), except in
data.binance.vision spot files from 2025 on, which use microseconds: ``epoch_ms`` turns either into
milliseconds. Conversions are exact integer arithmetic (no float rounding of large epoch values).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the last instant a PostgreSQL timestamptz (and Python) holds
MICROSECONDS_FROM = 10**15  # an epoch value at or above this is in microseconds (10**15 ms is the year 33658)
_MS = timedelta(milliseconds=1)


def epoch_ms(value: int) -> int:
    """An epoch time in milliseconds or microseconds (data.binance.vision files since 2025) -> milliseconds."""
    return value // 1000 if value >= MICROSECONDS_FROM else value


def ms_to_datetime(ms: int) -> datetime:
    """Epoch milliseconds -> an aware UTC datetime."""
    return EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(t: datetime) -> int:
    """A datetime (naive means UTC) -> epoch milliseconds (whole milliseconds, rounded down)."""
    return ((t if t.tzinfo else t.replace(tzinfo=timezone.utc)) - EPOCH) // _MS


def parse_utc(value: str | datetime) -> datetime:
    """An ISO 8601 time (``2024-03-01``, ``2024-03-01T12:00``, ``2024-03-01T00:00:00Z``; UTC unless it says)
    as an aware datetime; ``ValueError`` when it is not one."""
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def parse_time_ms(text: str) -> int | None:
    """``1709251260000`` (epoch ms) or an ISO 8601 time (``parse_utc``) -> epoch ms; empty -> None."""
    t = text.strip()
    if not t:
        return None
    if t.isdigit():
        return int(t)
    try:
        return datetime_to_ms(parse_utc(t))
    except ValueError:
        raise ValueError(f"expected epoch milliseconds or an ISO 8601 time such as 2024-03-01T00:00:00Z, got {text!r}") from None


def iso_seconds(ms: int) -> str:
    """Epoch milliseconds -> ``2024-03-01T00:01:00Z`` (to the second), for messages people read."""
    return ms_to_datetime(ms).isoformat(timespec="seconds").replace("+00:00", "Z")


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000
