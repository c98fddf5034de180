"""Binance kline intervals and their lengths (pure)."""

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
    # 1M is a calendar month: its length varies, so it has no fixed duration here.
    "1M": 31 * _DAY,
}

VARIABLE_LENGTH = frozenset({"1M"})


def interval_ms(interval: str) -> int:
    """Length of one candle in milliseconds (an upper bound for ``1M``)."""
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(f"unknown kline interval {interval!r}; valid: {', '.join(INTERVAL_MS)}") from None
