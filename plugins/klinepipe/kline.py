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
from decimal import Decimal

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
# Everything msgspec raises for bytes that are not a kline event: malformed JSON or wrong types, and invalid
# UTF-8 inside a JSON string (``UnicodeDecodeError``, which is not a ``DecodeError``). Any of them makes the
# message a dead letter; one left uncaught would fail, and roll back, the whole batch on every run.
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)
# Binance sends unsigned plain decimals ("46692.06000000"); no sign, exponent, NaN or infinity. ASCII digits
# only: Python's ``\d`` also matches other scripts' digits ("\u0663"), which PostgreSQL's numeric refuses.
# Possessive (no backtracking: a digit run is always followed by "." or " " or the end): ~30 % faster.
_DECIMAL_RE = r"[0-9]{1,30}+(?:\.[0-9]{1,30}+)?+"
_DECIMAL = re.compile(_DECIMAL_RE).fullmatch
# Times must fit a PostgreSQL timestamptz, counts a bigint: anything else would fail the whole batch's COPY.
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_BIGINT = 2**63 - 1
# Binance symbols are a few characters (``BTCUSDT``); a long one could not even be indexed (the primary key's
# B-tree refuses entries over 2,704 bytes).
MAX_SYMBOL_LENGTH = 64
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
    except DECODE_ERRORS as exc:
        raise KlineParseError(f"not a kline event: {exc}") from None
    if event.e != "kline":
        raise KlineParseError(f"event type is {event.e!r}, expected 'kline'")
    return kline_from_wire(event)


def kline_from_wire(event: BinanceKlineEvent) -> Kline:
    """Turn a decoded wire event into a domain ``Kline``, checking its invariants (the ingest's hot path)."""
    k = event.k
    if k.s != event.s:
        raise KlineParseError(f"symbol mismatch: event {event.s!r}, kline {k.s!r}")
    return checked(Kline(k.s, k.i, k.t, k.T, k.o, k.h, k.l, k.c, k.v, k.q, k.n, k.V, k.Q, k.x, event.E))


def checked(kline: Kline) -> Kline:
    """``kline`` itself once its invariants hold, whatever it came from (stream, REST, file); else
    ``KlineParseError`` saying what is wrong. Everything that passes can be stored by PostgreSQL."""
    symbol, interval, t, close_time = kline.symbol, kline.interval, kline.open_time, kline.close_time
    o, h, lo, c = kline.open, kline.high, kline.low, kline.close
    if not symbol.isalnum():  # letters and digits, any script; never empty, never a tab, backslash or NUL
        raise KlineParseError(f"invalid symbol {symbol[:40]!r}")
    if len(symbol) > MAX_SYMBOL_LENGTH:
        raise KlineParseError(f"symbol of {len(symbol)} characters, more than {MAX_SYMBOL_LENGTH}: {symbol[:20]!r}...")
    length = INTERVAL_MS.get(interval)
    if length is None:
        raise KlineParseError(f"unknown interval {interval[:20]!r}")
    if not (0 <= t <= close_time <= MAX_TIME_MS and 0 <= kline.event_time <= MAX_TIME_MS):
        raise KlineParseError(f"times out of range: open {t}, close {close_time}, event {kline.event_time} (epoch ms)")
    if kline.trades is not None and not 0 <= kline.trades <= MAX_BIGINT:
        raise KlineParseError(f"trade count out of range: {kline.trades}")
    if close_time != t + length - 1 and interval not in VARIABLE_LENGTH:
        raise KlineParseError(f"close time {close_time} does not match open time {t} + {interval}")
    q, bv, bq = kline.quote_volume, kline.taker_buy_base_volume, kline.taker_buy_quote_volume
    if _DECIMALS(f"{o} {h} {lo} {c} {kline.volume} {q or 0} {bv or 0} {bq or 0}") is None:
        _raise_bad_decimal(kline)
    # Ordering checked on floats: rounding is monotonic, so a valid candle never fails; the exact
    # numeric check over stored candles is the data-quality DAG's.
    fo, fh, fl, fc = float(o), float(h), float(lo), float(c)
    if not (fl <= fo <= fh and fl <= fc <= fh):
        raise KlineParseError(f"OHLC out of order: o={o} h={h} l={lo} c={c}")
    return kline


def _raise_bad_decimal(k: Kline) -> None:
    for name, value in (("o", k.open), ("h", k.high), ("l", k.low), ("c", k.close), ("v", k.volume),
                        ("q", k.quote_volume), ("V", k.taker_buy_base_volume), ("Q", k.taker_buy_quote_volume)):
        if value is not None and _DECIMAL(value) is None:
            raise KlineParseError(f"field {name!r} is not a plain decimal: {value!r}")
    raise KlineParseError("a price or volume is not a plain decimal")


# The one conflict rule, here and in the merge guard of ``candle_store`` (which builds its SQL from these names):
# closed beats in-progress; then the later event; at equal event times the greater content, compared field by
# field in this order, each money field as (value, scale) the way PostgreSQL's numeric holds it; then (by the
# callers, who know it) the greater source. A total order: the same versions give the same winner whatever
# their order or batching.
CONTENT_FIELDS = ("close_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
                  "taker_buy_base_volume", "taker_buy_quote_volume")
_MONEY = frozenset(CONTENT_FIELDS) - {"close_time", "trades"}


def content_order(k: Kline) -> tuple:
    """The content of a candle state as the conflict rule compares it (None as -1: values are unsigned)."""
    out: list = []
    for name in CONTENT_FIELDS:
        value = getattr(k, name)
        if name in _MONEY:
            out += (-1, -1) if value is None else (Decimal(value), len(value) - value.index(".") - 1 if "." in value else 0)
        else:
            out.append(-1 if value is None else value)
    return tuple(out)


def beats(b: Kline, a: Kline) -> bool | None:
    """Whether state ``b`` wins over ``a`` of the same candle; None when they tie (the same candle state,
    which the caller breaks by source)."""
    if b.is_closed != a.is_closed:
        return b.is_closed
    if b.event_time != a.event_time:
        return b.event_time > a.event_time
    if b == a:
        return None
    ob, oa = content_order(b), content_order(a)
    return None if ob == oa else ob > oa


def newest(a: Kline, b: Kline) -> Kline:
    """The state that wins for one candle (``beats``), whatever the order of the two; ``a`` on a tie."""
    return b if beats(b, a) else a


def in_conflict(a: Kline, b: Kline) -> bool:
    """Two closed versions of one candle whose content differs: recorded in ``etl.candle_conflicts``."""
    return a.is_closed and b.is_closed and _content(a) != _content(b) and content_order(a) != content_order(b)


def _content(k: Kline) -> tuple:
    return (k.close_time, k.open, k.high, k.low, k.close, k.volume, k.quote_volume, k.trades,
            k.taker_buy_base_volume, k.taker_buy_quote_volume)


def content_json(k: Kline, source: str) -> dict:
    """A candle version as ``etl.candle_conflicts`` records it (money as the decimal text received)."""
    return {"close_time": k.close_time, "open": k.open, "high": k.high, "low": k.low, "close": k.close,
            "volume": k.volume, "quote_volume": k.quote_volume, "trades": k.trades,
            "taker_buy_base_volume": k.taker_buy_base_volume, "taker_buy_quote_volume": k.taker_buy_quote_volume,
            "event_time": k.event_time, "source": source}
