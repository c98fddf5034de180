"""Epoch milliseconds <-> UTC datetimes, as the trader's records and brokers exchange times (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_ms(t: datetime) -> int:
    return (t - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)
