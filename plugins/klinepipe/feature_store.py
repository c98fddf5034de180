"""Incremental features: closed candles without a current feature row -> ``market.features``.

The work comes from ``etl.features_pending``, the queue every candle merge fills with the closed candles
it changed (new, or corrected by a later event), so finding it costs nothing however long the history;
a scan of every candle runs instead on the first run, after a feature-set change, or when asked.
The feature set is the default specs plus those registered in ``etl.feature_specs`` (``klinepipe.feature_set``);
when it changes, every series' history is recomputed once. For each series with such candles: load ``warmup``
closed candles (the set's longest warm-up) before the first new one, the candles up to the ``warmup``-th after
the last new one (binary COPY out), compute the feature set,
replace the rows from the first new candle to that bound (DELETE, then binary COPY straight into
``market.features``), and ``NOTIFY klinepipe_features`` (delivered at commit) with the series and the
last open time written. Rows past the bound cannot change (see ``compute_series``). All writes are one
transaction.

The exact ``close`` travels as an integer number of 1e-8 units plus its scale, both read in the same
COPY, and is written back as a ``numeric`` built from them: no float ever stands in for it. A series
with a close that has more than 8 decimals (never the case for Binance) takes a slower path that copies
the features into a staging table and joins ``close`` from ``market.candles``.

Reading and writing overlap: a second connection reads and the caller computes series *n + 1* while a
worker thread writes series *n* (PostgreSQL works on one core, numpy/TA-Lib on the other).
"""

from __future__ import annotations

import io
import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import psycopg2.errors
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from klinepipe import FEATURE_SET_VERSION, FEATURES_CHANNEL
from klinepipe.binance.times import datetime_to_ms, ms_to_datetime
from klinepipe.db import COPY_CHUNK
from klinepipe.feature_set import FeatureSet, ensure_columns, read_feature_set
from klinepipe.features import compute_specs
from klinepipe.pgbinary import (NUMERIC_SCALE, Float8, Numeric, Text, Timestamp, copy_stream, decode_rows,
                                encode_rows, named_columns, pg_time_to_ms, row_dtype)

log = logging.getLogger(__name__)

# Work is found two ways. Normally from the queue every candle merge fills (etl.features_pending): O(new).
# When etl.feature_state does not vouch for this feature set (first run, a feature-set change, or asked to
# rescan) by scanning every closed candle for a missing or outdated feature row: O(history).
_STATE = "SELECT feature_set_version, spec_set FROM etl.feature_state FOR UPDATE"
_TAKE_QUEUE = """
WITH taken AS (DELETE FROM etl.features_pending RETURNING symbol, interval, first_open_time, last_open_time)
SELECT symbol, interval, min(first_open_time), max(last_open_time) FROM taken GROUP BY symbol, interval
ORDER BY symbol, interval
"""
_PENDING = """
SELECT c.symbol, c.interval, min(c.open_time), max(c.open_time)
FROM market.candles c
LEFT JOIN market.features f USING (symbol, interval, open_time)
WHERE c.is_closed AND (f.open_time IS NULL OR f.feature_set_version <> %(v)s)
GROUP BY c.symbol, c.interval
ORDER BY c.symbol, c.interval
"""
# after a change of the spec set: every closed candle of every series (the new columns' whole history)
_EVERYTHING = """
SELECT symbol, interval, min(open_time), max(open_time) FROM market.candles WHERE is_closed
GROUP BY symbol, interval ORDER BY symbol, interval
"""
_VOUCH = """
INSERT INTO etl.feature_state (one, feature_set_version, spec_set) VALUES (true, %(v)s, %(specs)s)
ON CONFLICT (one) DO UPDATE SET feature_set_version = EXCLUDED.feature_set_version, spec_set = EXCLUDED.spec_set,
                                scanned_at = now()
"""

_WINDOW_START = """
SELECT coalesce(min(open_time), %(t)s) FROM (
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
      WHERE symbol = {{s}} AND interval = {{i}} AND is_closed AND open_time >= {{t}} AND open_time <= {{end}}
      ORDER BY open_time)
TO STDOUT (FORMAT binary)
"""
_WINDOW_ROW = row_dtype(">i8", ">f8", ">f8", ">f8", ">f8", ">i8", ">i4")
# the columns of _WINDOW, in its order: close_units is the close in 1e-NUMERIC_SCALE units (-1: does not fit)
_WINDOW_COLUMNS = ("open_time", "close", "high", "low", "volume", "close_units", "close_scale")

_DELETE = ("DELETE FROM market.features WHERE symbol = %(s)s AND interval = %(i)s AND open_time >= %(t)s"
           " AND open_time <= %(end)s")


def _copy_in(columns: tuple[str, ...]) -> str:
    return (f"COPY market.features (symbol, interval, open_time, feature_set_version, close, {', '.join(columns)})"
            " FROM STDIN (FORMAT binary)")


# the join path, for closes that do not fit the exact 1e-8 encoding (the temp table is rebuilt: the set may grow)
def _staging(columns: tuple[str, ...]) -> str:
    return ("DROP TABLE IF EXISTS features_staging; CREATE TEMP TABLE features_staging (open_time timestamptz, "
            f"{', '.join(f'{c} float8' for c in columns)}) ON COMMIT DELETE ROWS")


def _insert_joined(columns: tuple[str, ...]) -> str:
    return f"""
INSERT INTO market.features (symbol, interval, open_time, feature_set_version, close, {", ".join(columns)})
SELECT %(s)s, %(i)s, s.open_time, %(v)s, c.close, {", ".join(f"s.{c}" for c in columns)}
FROM features_staging s
JOIN market.candles c ON c.symbol = %(s)s AND c.interval = %(i)s AND c.open_time = s.open_time
"""


@dataclass(frozen=True)
class SeriesUpdate:
    symbol: str
    interval: str
    rows: int
    first_open_time: str
    last_open_time: str


@dataclass(frozen=True)
class _Computed:
    """One series' new feature rows, ready to write: a binary COPY of ``market.features`` rows, or, when
    a close does not fit the exact 1e-8 encoding, of ``features_staging`` rows to join with the candles."""

    symbol: str
    interval: str
    first_new: datetime
    end: datetime  # the last open time recomputed (rows after it are unchanged)
    rows: int
    last_ms: int | None
    copy: bytes
    joined: bool
    columns: tuple[str, ...]


def compute_pending_features(engine: Engine, *, rescan: bool = False) -> list[SeriesUpdate]:
    """Compute and store features for every series with new closed candles; one write transaction.

    ``rescan`` looks at every closed candle instead of the queue: after candles or features were changed
    by hand, outside the merges that fill the queue."""
    return _compute(engine, rescan=rescan)


def compute_queued_features(engine: Engine, *, lock_timeout_s: float = 10.0) -> list[SeriesUpdate] | None:
    """The loader's own features step, right after its commit (``dags/ingest_klines``): the queued candles'
    features, written and notified as ``compute_pending_features`` does, so that no second DAG run stands between
    a candle and the trader. Only the cheap, incremental work: ``None`` (nothing taken, nothing written) when
    a scan is due (first run, a feature-set or spec-set change) or another features run holds the lock for
    longer than ``lock_timeout_s`` -- ``compute_features``, which the loader's ``market.candles`` update
    schedules, does it then. Afterwards that run finds the queue empty and writes nothing."""
    try:
        return _compute(engine, queue_only=True, lock_timeout_s=lock_timeout_s)
    except _LeftToFeaturesRun as why:
        log.info("features: left to compute_features (%s)", why)
        return None


class _LeftToFeaturesRun(Exception):
    """``compute_queued_features`` takes no work: a scan is due, or another features run holds the lock."""


def _compute(engine: Engine, *, rescan: bool = False, queue_only: bool = False,
             lock_timeout_s: float | None = None) -> list[SeriesUpdate]:
    reader, writer = engine.raw_connection(), engine.raw_connection()
    writing: Future | None = None
    updates: list[SeriesUpdate] = []
    try:
        with reader.cursor() as rcur, writer.cursor() as wcur, ThreadPoolExecutor(1, thread_name_prefix="features") as pool:
            try:
                feature_set, pending = _take_pending(wcur, rescan, queue_only=queue_only, lock_timeout_s=lock_timeout_s)
                for symbol, interval, first, last in pending:
                    computed = compute_series(rcur, symbol, interval, first, last, feature_set)
                    if writing is not None:
                        updates.append(writing.result())
                    writing = pool.submit(write_series, wcur, computed)
                if writing is not None:
                    updates.append(writing.result())
                    writing = None
            finally:
                if writing is not None:  # an error while a write runs: let it finish before the rollback
                    wait([writing])
        writer.commit()
    except BaseException:
        writer.rollback()
        raise
    finally:
        reader.rollback()
        reader.close()
        writer.close()
    for u in updates:
        log.info("features %s %s: %d rows up to %s", u.symbol, u.interval, u.rows, u.last_open_time)
    return updates


def _take_pending(cur, rescan: bool, *, queue_only: bool = False, lock_timeout_s: float | None = None,
                  ) -> tuple[FeatureSet, list[tuple[str, str, datetime, datetime]]]:
    """The feature set (default + registered specs, its new columns added) and, per series, the first and last
    open time of closed candles whose features are due, taken in the write transaction (a rollback gives them
    back). Locks etl.feature_state: one features run at a time.

    The queue is emptied before any scan, so a candle merged meanwhile is either seen by the scan or left
    queued for the next run, never lost. A grown (or otherwise changed) spec set recomputes every series'
    whole history once. ``queue_only``: raise ``_LeftToFeaturesRun`` instead of scanning (or adding columns), and
    when the lock is not had within ``lock_timeout_s``."""
    if lock_timeout_s is not None:
        cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{max(int(lock_timeout_s * 1000), 1)}ms",))
    try:
        cur.execute(_STATE)
    except psycopg2.errors.LockNotAvailable:
        raise _LeftToFeaturesRun(f"another features run held etl.feature_state for {lock_timeout_s} s") from None
    state = cur.fetchone()
    if lock_timeout_s is not None:
        cur.execute("SELECT set_config('lock_timeout', '0', true)")  # the lock is held: the rest waits as usual
    feature_set = read_feature_set(cur)
    same_specs = state is not None and state[1] == feature_set.spec_set
    vouched = same_specs and state[0] == FEATURE_SET_VERSION
    if queue_only and not vouched:
        raise _LeftToFeaturesRun("no feature set recorded yet" if state is None else "a scan is due: the feature set changed")
    ensure_columns(cur, feature_set)
    cur.execute(_TAKE_QUEUE)
    queued = cur.fetchall()
    if not rescan and vouched:
        return feature_set, queued
    log.info("features: scanning every closed candle (%s)", "asked to" if rescan else
             "no feature set recorded yet" if state is None else f"feature set {state[0]} -> {FEATURE_SET_VERSION}"
             if same_specs else f"spec set now {feature_set.spec_set}")
    cur.execute(_PENDING if same_specs else _EVERYTHING, {"v": FEATURE_SET_VERSION})
    spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    for symbol, interval, first, last in [*queued, *cur.fetchall()]:  # the queue also holds changed candles
        seen = spans.get((symbol, interval))
        spans[(symbol, interval)] = (first, last) if seen is None else (min(seen[0], first), max(seen[1], last))
    cur.execute(_VOUCH, {"v": FEATURE_SET_VERSION, "specs": feature_set.spec_set})
    return feature_set, [(s, i, first, last) for (s, i), (first, last) in sorted(spans.items())]


def compute_series(cur, symbol: str, interval: str, first_new: datetime, last_new: datetime,
                   feature_set: FeatureSet) -> _Computed:
    """Read one series around its new candles (``first_new`` .. ``last_new``), compute its features and
    encode the rows to write (no writes: the worker thread only talks to PostgreSQL, without the GIL).

    The rows recomputed run from ``first_new`` to the ``warmup``-th closed candle after ``last_new`` (the
    set's longest warm-up): a feature depends on at most that many candles before it (the module doc of
    ``klinepipe.features``), so later rows are already what a full recompute would give. A backfilled gap
    rewrites about ``warmup`` rows, not the whole history after it.
    """
    params = {"s": symbol, "i": interval, "t": first_new, "warmup": feature_set.warmup}
    cur.execute(_WINDOW_START, params)
    start = cur.fetchone()[0]
    cur.execute(_WINDOW_END, {**params, "t": last_new})
    found = cur.fetchone()
    end = found[0] if found else _FOREVER
    out = io.BytesIO()
    cur.copy_expert(_WINDOW.format(s=_lit(cur, symbol), i=_lit(cur, interval), t=_lit(cur, start), end=_lit(cur, end)), out)
    window = named_columns(decode_rows(out.getvalue(), _WINDOW_ROW), _WINDOW_COLUMNS)
    times = pg_time_to_ms(window["open_time"])
    feats = compute_specs(feature_set.specs, *(window[c].astype(np.float64) for c in ("close", "high", "low", "volume")))
    keep = times >= datetime_to_ms(first_new)
    times = times[keep]
    units, scale = window["close_units"][keep].astype(np.int64), window["close_scale"][keep].astype(np.int64)
    floats = [Float8(feats[c][keep]) for c in feature_set.columns]
    joined = bool(len(units) and units.min() < 0)
    if joined:
        fields = [Timestamp(times), *floats]
    else:
        fields = [Text(symbol.encode()), Text(interval.encode()), Timestamp(times), Text(FEATURE_SET_VERSION.encode()),
                  Numeric(units, scale), *floats]
    last = int(times[-1]) if len(times) else None
    return _Computed(symbol, interval, first_new, end, len(times), last, copy_stream(encode_rows(fields)) if len(times) else b"",
                     joined, feature_set.columns)


def write_series(cur, c: _Computed) -> SeriesUpdate:
    """Replace the series' feature rows from ``first_new`` to ``end`` and queue its notification."""
    params = {"s": c.symbol, "i": c.interval, "t": c.first_new, "end": c.end, "v": FEATURE_SET_VERSION}
    cur.execute(_DELETE, params)
    if c.joined:
        cur.execute(_staging(c.columns))
        cur.copy_expert("COPY features_staging FROM STDIN (FORMAT binary)", io.BytesIO(c.copy), COPY_CHUNK)
        cur.execute(_insert_joined(c.columns), params)
    elif c.rows:
        cur.copy_expert(_copy_in(c.columns), io.BytesIO(c.copy), COPY_CHUNK)
    last = ms_to_datetime(c.last_ms) if c.last_ms is not None else c.first_new
    payload = {"symbol": c.symbol, "interval": c.interval, "open_time": last.isoformat(), "rows": c.rows}
    cur.execute("SELECT pg_notify(%s, %s)", (FEATURES_CHANNEL, json.dumps(payload)))
    return SeriesUpdate(c.symbol, c.interval, c.rows, c.first_new.isoformat(), last.isoformat())


_FOREVER = datetime(9999, 12, 31, tzinfo=timezone.utc)


def _lit(cur, value) -> str:
    return cur.mogrify("%s", (value,)).decode()


def load_features(engine: Engine, symbol: str, interval: str) -> pd.DataFrame:
    """All stored feature rows of one series, oldest first (for tests and reports)."""
    query = sa.text("SELECT * FROM market.features WHERE symbol = :s AND interval = :i ORDER BY open_time")
    with engine.connect() as conn:
        return pd.read_sql_query(query, conn, params={"s": symbol, "i": interval})
