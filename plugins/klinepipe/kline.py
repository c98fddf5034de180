"""Binance kline events and rows -> domain ``Kline``, checked (pure, no I/O); the one conflict rule.

The wire structs are ``klinepipe.binance``'s. What ``parse_kline_event`` accepts is what both the sidecar
(``streaming.envelope``) and the loader (``klinepipe.ingest``) accept. A real event is in ``klinepipe.binance.events``.

Prices and volumes stay exact: they are kept as the decimal strings Binance sent, after
checking that each one is a plain unsigned decimal (PostgreSQL stores them as ``numeric``).
"""

from __future__ import annotations

import re
from decimal import Decimal

import msgspec

from klinepipe.binance.events import DECODE_ERRORS, BinanceKlineEvent, decode_kline_event
from klinepipe.binance.intervals import INTERVAL_MS, VARIABLE_LENGTH, close_time_of
from klinepipe.binance.rows import BinanceKlineRow, parse_kline_row
from klinepipe.binance.times import MAX_TIME_MS
from klinepipe.errors import KlineParseError

# Binance sends unsigned plain decimals ("46692.06000000"); no sign, exponent, NaN or infinity. ASCII digits
# only: Python's ``\d`` also matches other scripts' digits ("\u0663"), which PostgreSQL's numeric refuses.
# Possessive (no backtracking: a digit run is always followed by "." or " " or the end): ~30 % faster.
_DECIMAL_RE = r"[0-9]{1,30}+(?:\.[0-9]{1,30}+)?+"
_DECIMAL = re.compile(_DECIMAL_RE).fullmatch
# Times must fit a PostgreSQL timestamptz (``MAX_TIME_MS``), counts a bigint: anything else would fail the whole
# batch's COPY.
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
        event = decode_kline_event(raw)
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


def row_to_kline(row, symbol: str, interval: str, event_time_ms: int) -> Kline:
    """A 12-column kline row (REST or file, ``binance.rows``) as a closed candle, checked like a streamed one;
    ``KlineParseError`` for anything else. Whether a REST row is final is the caller's (``binance.finality``)."""
    r: BinanceKlineRow = parse_kline_row(row)
    return checked(Kline(symbol, interval, r.open_time, r.close_time, r.open, r.high, r.low, r.close, r.volume,
                         r.quote_volume, r.trades, r.taker_buy_base_volume, r.taker_buy_quote_volume, True, event_time_ms))


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
    if close_time != (t + length - 1 if interval not in VARIABLE_LENGTH else close_time_of(t, interval)):
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
# closed beats in-progress; then the later event; at equal event times the greater values, compared field by
# field in this order (a missing one as -1: values are unsigned); then the greater scales (``1.50`` over ``1.5``,
# as PostgreSQL's numeric keeps them); then (by the callers, who know it) the greater source. A total order: the
# same versions give the same winner whatever their order or batching.
CONTENT_FIELDS = ("close_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
                  "taker_buy_base_volume", "taker_buy_quote_volume")
MONEY_FIELDS = tuple(n for n in CONTENT_FIELDS if n not in ("close_time", "trades"))


def content_order(k: Kline) -> tuple:
    """The content of a candle state as the conflict rule compares it: its values, then its money scales."""
    values = tuple(-1 if v is None else v for v in _values(k))
    scales = tuple(-1 if v is None else (len(v) - v.index(".") - 1 if "." in v else 0)
                   for v in (getattr(k, n) for n in MONEY_FIELDS))
    return values + scales


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
    """Two closed versions of one candle whose values differ (``1.5`` and ``1.50`` do not): recorded in
    ``etl.candle_conflicts``."""
    return a.is_closed and b.is_closed and _content(a) != _content(b) and _values(a) != _values(b)


def _content(k: Kline) -> tuple:
    return (k.close_time, k.open, k.high, k.low, k.close, k.volume, k.quote_volume, k.trades,
            k.taker_buy_base_volume, k.taker_buy_quote_volume)


def _values(k: Kline) -> tuple:
    return tuple(Decimal(v) if n in MONEY_FIELDS and v is not None else v for n, v in zip(CONTENT_FIELDS, _content(k)))


def content_json(k: Kline, source: str) -> dict:
    """A candle version as ``etl.candle_conflicts`` records it (money as the decimal text received)."""
    return {"close_time": k.close_time, "open": k.open, "high": k.high, "low": k.low, "close": k.close,
            "volume": k.volume, "quote_volume": k.quote_volume, "trades": k.trades,
            "taker_buy_base_volume": k.taker_buy_base_volume, "taker_buy_quote_volume": k.taker_buy_quote_volume,
            "event_time": k.event_time, "source": source}
