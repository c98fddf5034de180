"""One series' feature rows, computed in windows: its candles read by binary COPY around the new ones, the
feature set computed over each window with its warm-up, the rows encoded for ``feature_store.write_series``.

Pure reads and computing (no writes): ``feature_store`` runs this on its reader connection while a worker thread
writes the previous window. See ``feature_store``'s module doc for the windows, the warm-up and the exact close.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from klinepipe import FEATURE_SET_VERSION
from klinepipe.binance.times import datetime_to_ms
from klinepipe.feature_set import FeatureSet
from klinepipe.features import compute_specs
from klinepipe.pgbinary import (NUMERIC_SCALE, Float8, Numeric, Text, Timestamp, copy_stream, decode_rows,
                                encode_rows, named_columns, pg_time_to_ms, row_dtype)

# where the read starts (the warmup-th closed candle before the first new one) and how many candles precede it
_WINDOW_START = """
SELECT coalesce(min(open_time), %(t)s), count(*) FROM (
    SELECT open_time FROM market.candles
    WHERE symbol = %(s)s AND interval = %(i)s AND is_closed AND open_time < %(t)s
    ORDER BY open_time DESC LIMIT %(warmup)s
) warm
"""

# the warmup-th closed candle after the last new one: rows after it keep identical features
_WINDOW_END = """
SELECT open_time FROM market.candles
WHERE symbol = %(s)s AND interval = %(i)s AND is_closed AND open_time > %(t)s
ORDER BY open_time OFFSET %(warmup)s - 1 LIMIT 1
"""

# close in 1e-8 units when it has at most 8 decimals and fits a bigint, else -1 (the series takes the join path)
_WINDOW = f"""
COPY (SELECT open_time, close::float8, high::float8, low::float8, volume::float8,
             CASE WHEN scale(close) <= {NUMERIC_SCALE} AND close < 90000000000
                  THEN (close * 1e{NUMERIC_SCALE})::int8 ELSE -1 END,
             scale(close)
      FROM market.candles
      WHERE symbol = {{s}} AND interval = {{i}} AND is_closed AND open_time {{op}} {{t}} AND open_time <= {{end}}
      ORDER BY open_time{{limit}})
TO STDOUT (FORMAT binary)
"""
_WINDOW_ROW = row_dtype(">i8", ">f8", ">f8", ">f8", ">f8", ">i8", ">i4")
# the columns of _WINDOW, in its order: close_units is the close in 1e-NUMERIC_SCALE units (-1: does not fit)
_WINDOW_COLUMNS = ("open_time", "close", "high", "low", "volume", "close_units", "close_scale")

@dataclass(frozen=True)
class ComputedWindow:
    """One window's new feature rows, ready to write: a binary COPY of ``market.features`` rows, or, when
    a close does not fit the exact 1e-8 encoding, of ``features_staging`` rows to join with the candles.
    They replace the stored rows from ``start`` (after it, when not ``from_start``) to ``end``; the last
    window of a series (``last``) also queues the series' notification, with its totals."""

    symbol: str
    interval: str
    first_new: datetime
    start: datetime
    from_start: bool
    end: datetime  # the last open time recomputed (in the last window: rows after it are unchanged)
    rows: int
    copy: bytes
    joined: bool
    columns: tuple[str, ...]
    last: bool = True
    series_rows: int = 0  # the series' rows up to and with this window
    series_last_ms: int | None = None


def compute_series(cur, symbol: str, interval: str, first_new: datetime, last_new: datetime,
                   feature_set: FeatureSet) -> ComputedWindow:
    """One series' new rows in one piece (``series_windows`` without a window size)."""
    (computed,) = series_windows(cur, symbol, interval, first_new, last_new, feature_set, None)
    return computed


def series_windows(cur, symbol: str, interval: str, first_new: datetime, last_new: datetime,
                   feature_set: FeatureSet, window_rows: int | None) -> Iterator[ComputedWindow]:
    """Read one series around its new candles (``first_new`` .. ``last_new``), compute its features and
    encode the rows to write, ``window_rows`` new rows at a time (``None``: in one piece); no writes (the
    worker thread only talks to PostgreSQL, without the GIL).

    The rows recomputed run from ``first_new`` to the ``warmup``-th closed candle after ``last_new`` (the
    set's longest warm-up): a feature depends on at most that many candles before it (the module doc of
    ``klinepipe.features``), so later rows are already what a full recompute would give. A backfilled gap
    rewrites about ``warmup`` rows, not the whole history after it. Each window is computed over the
    ``warmup`` candles before its first row (kept from the previous read) and its own: every row gets the
    values one piece would give.
    """
    warmup = feature_set.warmup
    tail: dict[str, np.ndarray] | None = None  # the last `warmup` candles read: the next window's warm-up
    start, from_start = first_new, True
    total, last_ms = 0, None
    for chunk, done, upto in read_windows(cur, symbol, interval, first_new, last_new, warmup, window_rows):
        if tail is None:
            window = chunk
            keep = pg_time_to_ms(window["open_time"]) >= datetime_to_ms(first_new)
        else:
            window = {c: np.concatenate((tail[c], chunk[c])) for c in _WINDOW_COLUMNS}
            keep = np.arange(len(window["open_time"])) >= len(tail["open_time"])
        rows, copy, joined = _encode(symbol, interval, window, keep, feature_set)
        if rows:
            total, last_ms = total + rows, int(pg_time_to_ms(window["open_time"][-1:])[0])
        yield ComputedWindow(symbol, interval, first_new, start, from_start, upto, rows, copy, joined, feature_set.columns,
                        done, total, last_ms)
        tail = {c: window[c][-warmup:] for c in _WINDOW_COLUMNS}
        start, from_start = upto, False


def read_windows(cur, symbol: str, interval: str, first_new: datetime, last_new: datetime, warmup: int,
                 window_rows: int | None) -> Iterator[tuple[dict[str, np.ndarray], bool, datetime]]:
    """The candles ``series_windows`` computes from, by binary COPY: the ``warmup`` closed candles before
    ``first_new`` and those up to the ``warmup``-th after ``last_new``, ``window_rows`` after the warm-up at a
    time (``None``: all at once), each read after the previous one. Yields the columns of ``_WINDOW_COLUMNS``,
    whether it is the last read, and the last open time it covers (in the last: the bound of the recompute)."""
    params = {"s": symbol, "i": interval, "t": first_new, "warmup": warmup}
    cur.execute(_WINDOW_START, params)
    read_from, before = cur.fetchone()
    cur.execute(_WINDOW_END, {**params, "t": last_new})
    found = cur.fetchone()
    end = found[0] if found else _FOREVER
    s, i, e = _lit(cur, symbol), _lit(cur, interval), _lit(cur, end)
    first = True
    while True:
        limit = None if window_rows is None else window_rows + (before if first else 0)
        out = io.BytesIO()
        cur.copy_expert(_WINDOW.format(s=s, i=i, op=">=" if first else ">", t=_lit(cur, read_from), end=e,
                                       limit="" if limit is None else f" LIMIT {limit}"), out)
        chunk = named_columns(decode_rows(out.getvalue(), _WINDOW_ROW), _WINDOW_COLUMNS)
        done = limit is None or len(chunk["open_time"]) < limit
        upto = end if done else _pg_time(chunk["open_time"][-1])
        yield chunk, done, upto
        if done:
            return
        read_from, first = upto, False


def _encode(symbol: str, interval: str, window: dict[str, np.ndarray], keep: np.ndarray,
            feature_set: FeatureSet) -> tuple[int, bytes, bool]:
    """The feature rows of ``window``'s candles where ``keep``, computed over all of them: (rows, COPY, joined)."""
    if not keep.any():
        return 0, b"", False
    feats = compute_specs(feature_set.specs, *(window[c].astype(np.float64) for c in ("close", "high", "low", "volume")))
    times = pg_time_to_ms(window["open_time"][keep])
    units, scale = window["close_units"][keep].astype(np.int64), window["close_scale"][keep].astype(np.int64)
    floats = [Float8(feats[c][keep]) for c in feature_set.columns]
    joined = bool(units.min() < 0)
    if joined:
        fields = [Timestamp(times), *floats]
    else:
        fields = [Text(symbol.encode()), Text(interval.encode()), Timestamp(times), Text(FEATURE_SET_VERSION.encode()),
                  Numeric(units, scale), *floats]
    return len(times), copy_stream(encode_rows(fields)), joined


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def _pg_time(pg_us) -> datetime:
    """A ``timestamptz`` read by binary COPY (microseconds since 2000-01-01) -> the same instant, exactly."""
    return _PG_EPOCH + timedelta(microseconds=int(pg_us))


_FOREVER = datetime(9999, 12, 31, tzinfo=timezone.utc)


def _lit(cur, value) -> str:
    return cur.mogrify("%s", (value,)).decode()
