"""Epoch milliseconds <-> UTC datetimes, as the trader's records and brokers exchange times (pure): the wire
module's exact converters under the trader's names."""

from __future__ import annotations

from klinepipe.binance.times import datetime_to_ms as to_ms
from klinepipe.binance.times import ms_to_datetime as from_ms

__all__ = ["from_ms", "to_ms"]
