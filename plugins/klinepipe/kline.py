"""Binance kline events: raw wire schema -> domain ``Kline`` (pure, no I/O).

A real event, as received on ``wss://stream.binance.com:9443/ws/btcusdt@kline_5m``::

    {"e":"kline","E":1631637132163,"s":"BTCUSDT","k":{"t":1631637000000,"T":1631637299999,
     "s":"BTCUSDT","i":"5m","f":1054221988,"L":1054224183,"o":"46692.06000000",
     "c":"46672.98000000","h":"46720.00000000","l":"46658.01000000","v":"53.38997000",
     "n":2196,"x":false,"q":"2492731.28713130","V":"28.76136000","Q":"1342722.01811650","B":"0"}}

Prices and volumes stay exact: they are kept as the decimal strings Binance sent, after
checking that each one is a plain unsigned decimal (PostgreSQL stores them as ``numeric``).
"""

from __future__ import annotations

import re

import msgspec

from klinepipe.errors import KlineParseError
from klinepipe.intervals import INTERVAL_MS, VARIABLE_LENGTH


class BinanceKline(msgspec.Struct, gc=False):
    """The ``k`` object of a kline event, field names as on the wire (no GC tracking: strings and numbers only)."""

    t: int
    T: int
    s: str
    i: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741 - Binance's wire name
    v: str
    x: bool
    n: int | None = None
    q: str | None = None
    V: str | None = None
    Q: str | None = None
    f: int | None = None
    L: int | None = None
    B: str | None = None


class BinanceKlineEvent(msgspec.Struct, gc=False):
    """A kline stream event (``e`` == ``"kline"``)."""

    e: str
    E: int
    s: str
    k: BinanceKline


_decode_event = msgspec.json.Decoder(BinanceKlineEvent).decode
# Binance sends unsigned plain decimals ("46692.06000000"); no sign, exponent, NaN or infinity.
_DECIMAL_RE = r"\d{1,30}(?:\.\d{1,30})?"
_DECIMAL = re.compile(_DECIMAL_RE).fullmatch
_DECIMALS = re.compile(rf"{_DECIMAL_RE}(?: {_DECIMAL_RE}){{7}}").fullmatch  # the eight money fields at once


class Kline(msgspec.Struct, frozen=True, gc=False):
    """One candle state. Times are epoch milliseconds UTC; money fields are decimal strings (not GC-tracked:
    no field can hold a reference cycle)."""

    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str | None
    trades: int | None
    taker_buy_base_volume: str | None
    taker_buy_quote_volume: str | None
    is_closed: bool
    event_time: int

    @property
    def key(self) -> str:
        return series_key(self.symbol, self.interval)


def series_key(symbol: str, interval: str) -> str:
    """The Kafka key of a series: ``SYMBOL:interval`` (e.g. ``BTCUSDT:1m``)."""
    return f"{symbol}:{interval}"


def parse_kline_event(raw: bytes | str) -> Kline:
    """Decode and validate one kline event; raise ``KlineParseError`` saying what is wrong."""
    try:
        event = _decode_event(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise KlineParseError(f"not a kline event: {exc}") from None
    if event.e != "kline":
        raise KlineParseError(f"event type is {event.e!r}, expected 'kline'")
    return kline_from_wire(event)


def kline_from_wire(event: BinanceKlineEvent) -> Kline:
    """Turn a decoded wire event into a domain ``Kline``, checking its invariants (the ingest's hot path)."""
    k = event.k
    symbol, interval, o, h, lo, c = k.s, k.i, k.o, k.h, k.l, k.c
    if symbol != event.s:
        raise KlineParseError(f"symbol mismatch: event {event.s!r}, kline {symbol!r}")
    if not symbol.isalnum():  # letters and digits, any script; never empty, never a tab or backslash
        raise KlineParseError(f"invalid symbol {symbol!r}")
    length = INTERVAL_MS.get(interval)
    if length is None:
        raise KlineParseError(f"unknown interval {interval!r}")
    if k.T != k.t + length - 1 and interval not in VARIABLE_LENGTH:
        raise KlineParseError(f"close time {k.T} does not match open time {k.t} + {interval}")
    if _DECIMALS(f"{o} {h} {lo} {c} {k.v} {k.q or 0} {k.V or 0} {k.Q or 0}") is None:
        _raise_bad_decimal(k)
    # Ordering checked on floats: rounding is monotonic, so a valid candle never fails; the exact
    # numeric check over stored candles is the data-quality DAG's.
    fo, fh, fl, fc = float(o), float(h), float(lo), float(c)
    if not (fl <= fo <= fh and fl <= fc <= fh):
        raise KlineParseError(f"OHLC out of order: o={o} h={h} l={lo} c={c}")
    return Kline(symbol, interval, k.t, k.T, o, h, lo, c, k.v, k.q, k.n, k.V, k.Q, k.x, event.E)


def _raise_bad_decimal(k: BinanceKline) -> None:
    for name, value in (("o", k.o), ("h", k.h), ("l", k.l), ("c", k.c), ("v", k.v), ("q", k.q), ("V", k.V), ("Q", k.Q)):
        if value is not None and _DECIMAL(value) is None:
            raise KlineParseError(f"field {name!r} is not a plain decimal: {value!r}")
    raise KlineParseError("a price or volume is not a plain decimal")


def newest(a: Kline, b: Kline) -> Kline:
    """The state that wins for one candle: closed beats in-progress, then the later event."""
    return b if (b.is_closed, b.event_time) >= (a.is_closed, a.event_time) else a
