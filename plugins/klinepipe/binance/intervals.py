"""Binance kline intervals: the one table, each candle's length, and calendar months for ``1M`` (pure).

The same set serves REST and streams (reference 1.4): ``1s`` ... ``1w`` have a fixed length; ``1M`` is a
calendar month in UTC (28 to 31 days), so its candles are stepped with ``next_open_time``, never by a
fixed length. data.binance.vision spells ``1M`` as ``1mo`` in file names (``rows.series_from_file_name``).
"""

from __future__ import annotations

from klinepipe.binance.times import MAX_TIME_MS, datetime_to_ms, ms_to_datetime

_SECOND = 1_000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

INTERVAL_MS: dict[str, int] = {
    "1s": _SECOND,
    "1m": _MINUTE,
    "3m": 3 * _MINUTE,
    "5m": 5 * _MINUTE,
    "15m": 15 * _MINUTE,
    "30m": 30 * _MINUTE,
    "1h": _HOUR,
    "2h": 2 * _HOUR,
    "4h": 4 * _HOUR,
    "6h": 6 * _HOUR,
    "8h": 8 * _HOUR,
    "12h": 12 * _HOUR,
    "1d": _DAY,
    "3d": 3 * _DAY,
    "1w": 7 * _DAY,
    "1M": 31 * _DAY,  # a calendar month: its longest, an upper bound (``next_open_time`` steps it exactly)
}
INTERVALS: tuple[str, ...] = tuple(INTERVAL_MS)  # in Binance's order
VARIABLE_LENGTH = frozenset({"1M"})


def interval_ms(interval: str) -> int:
    """Length of one candle in milliseconds (an upper bound for ``1M``)."""
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(f"unknown kline interval {interval!r}; valid: {', '.join(INTERVAL_MS)}") from None


def next_open_time(open_time: int, interval: str) -> int:
    """Open time of the candle after the one opening at ``open_time`` (``1M``: the first of the next calendar
    month, 00:00 UTC)."""
    if interval not in VARIABLE_LENGTH:
        return open_time + interval_ms(interval)
    d = ms_to_datetime(open_time)
    if (d.year, d.month) == (9999, 12):
        return MAX_TIME_MS + 1  # 10000-01-01, which no datetime holds
    return datetime_to_ms(d.replace(year=d.year + d.month // 12, month=d.month % 12 + 1, day=1, hour=0, minute=0,
                                    second=0, microsecond=0))


def close_time_of(open_time: int, interval: str) -> int:
    """The close time Binance gives the candle opening at ``open_time``: the next open time minus 1 ms."""
    return next_open_time(open_time, interval) - 1
