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
last open time written. Rows past the bound cannot change (see ``feature_windows.series_windows``). All writes are one
transaction.

The exact ``close`` travels as an integer number of 1e-8 units plus its scale, both read in the same
COPY, and is written back as a ``numeric`` built from them: no float ever stands in for it. A series
with a close that has more than 8 decimals (never the case for Binance) takes a slower path that copies
the features into a staging table and joins ``close`` from ``market.candles``.

Reading and writing overlap: a second connection reads and the caller computes window *n + 1* while a
worker thread writes window *n* (PostgreSQL works on one core, numpy/TA-Lib on the other). A window is at most
``WINDOW_ROWS`` new rows of one series: a long recompute (a series' whole history) is a sequence of windows,
each read after the previous one (no candle read twice) and computed over the ``warmup`` candles read before it
plus its own, exactly as an incremental run would compute it, so a full recompute is bit for bit the same in
windows or in one piece. The first window's read and computing, and the last one's write, are the only work
not overlapped; a series' notification is queued with its last window.
"""

from __future__ import annotations

import io
import json
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import psycopg2.errors
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from klinepipe import FEATURE_SET_VERSION, FEATURES_CHANNEL
from klinepipe.binance.times import ms_to_datetime
from klinepipe.db import COPY_CHUNK
from klinepipe.feature_set import FeatureSet, ensure_columns, read_feature_set
from klinepipe.feature_windows import ComputedWindow, series_windows


log = logging.getLogger(__name__)

# new rows per window of a long recompute: small enough that the pipeline's fill (the first window's read and
# computing) and drain (the last window's write) are short, large enough that each window's warm-up candles
# (computed again, not read again) and its two statements cost little
# (measured at 500k candles in 5 series: 10k rows is ~12 % more computing, the warm-up, and a fill + drain of
# ~0.1 s, where one window per series left ~0.6 s of a 2.2 s run unoverlapped)
WINDOW_ROWS = 10_000
# windows computed ahead of the one being written (each ~2.8 MB of COPY at 10k rows of the default set)
_AHEAD = 2

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
# after a change of the spec set: every closed candle of every series (the new columns' whole history). The series
# are found by skipping along the primary key (a few index probes per series and partition) and each one's first and
# last closed candle from its ends, not by grouping every candle (a scan of the history: 0.12-0.23 s at 1M candles
# against ~3 ms, run before any window can be read); planned with sorting off, as the reader's windows
_EVERYTHING = """
WITH RECURSIVE series AS (
    (SELECT symbol, interval FROM market.candles ORDER BY symbol, interval LIMIT 1)
    UNION ALL
    SELECT n.symbol, n.interval FROM series s CROSS JOIN LATERAL (
        SELECT c.symbol, c.interval FROM market.candles c WHERE (c.symbol, c.interval) > (s.symbol, s.interval)
        ORDER BY c.symbol, c.interval LIMIT 1) n
)
SELECT s.symbol, s.interval, lo.open_time, hi.open_time FROM series s
CROSS JOIN LATERAL (SELECT open_time FROM market.candles c WHERE c.symbol = s.symbol AND c.interval = s.interval
                    AND c.is_closed ORDER BY c.open_time LIMIT 1) lo
CROSS JOIN LATERAL (SELECT open_time FROM market.candles c WHERE c.symbol = s.symbol AND c.interval = s.interval
                    AND c.is_closed ORDER BY c.open_time DESC LIMIT 1) hi
ORDER BY 1, 2
"""
_VOUCH = """
INSERT INTO etl.feature_state (one, feature_set_version, spec_set) VALUES (true, %(v)s, %(specs)s)
ON CONFLICT (one) DO UPDATE SET feature_set_version = EXCLUDED.feature_set_version, spec_set = EXCLUDED.spec_set,
                                scanned_at = now()
"""

_DELETE = ("DELETE FROM market.features WHERE symbol = %(s)s AND interval = %(i)s AND open_time {op} %(t)s"
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
    writing: deque[Future] = deque()
    updates: list[SeriesUpdate] = []
    try:
        with reader.cursor() as rcur, writer.cursor() as wcur, ThreadPoolExecutor(1, thread_name_prefix="features") as pool:
            try:
                # A window is read with ORDER BY open_time LIMIT n, which the primary key's order answers. A history
                # just loaded has no statistics yet (autovacuum's ANALYZE comes later): the planner then expects one
                # row per partition and sorts the rest of the series for every window (O(history) per window: a
                # 500k-candle recompute took 4-5 s instead of 1.5-2). Sorting is off for the reader's transaction.
                rcur.execute("SET LOCAL enable_sort = off")
                feature_set, pending = _take_pending(wcur, rescan, queue_only=queue_only, lock_timeout_s=lock_timeout_s)
                for symbol, interval, first, last in pending:
                    for computed in series_windows(rcur, symbol, interval, first, last, feature_set, WINDOW_ROWS):
                        while len(writing) > _AHEAD:
                            _collect(writing.popleft(), updates)
                        writing.append(pool.submit(write_series, wcur, computed))
                while writing:
                    _collect(writing.popleft(), updates)
            finally:
                if writing:  # an error while writes run: let them finish (or be cancelled) before the rollback
                    for f in writing:
                        f.cancel()
                    wait(writing)
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


def _collect(writing: Future, updates: list[SeriesUpdate]) -> None:
    update = writing.result()
    if update is not None:
        updates.append(update)


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
    if same_specs:
        cur.execute(_PENDING, {"v": FEATURE_SET_VERSION})
        found = cur.fetchall()
    else:
        cur.execute("SET LOCAL enable_sort = off")
        cur.execute(_EVERYTHING)
        found = cur.fetchall()
        cur.execute("SET LOCAL enable_sort TO DEFAULT")
    spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
    for symbol, interval, first, last in [*queued, *found]:  # the queue also holds changed candles
        seen = spans.get((symbol, interval))
        spans[(symbol, interval)] = (first, last) if seen is None else (min(seen[0], first), max(seen[1], last))
    cur.execute(_VOUCH, {"v": FEATURE_SET_VERSION, "specs": feature_set.spec_set})
    return feature_set, [(s, i, first, last) for (s, i), (first, last) in sorted(spans.items())]


def write_series(cur, c: ComputedWindow) -> SeriesUpdate | None:
    """Replace the window's feature rows (``start`` .. ``end``); with a series' last window, queue its
    notification and return its update."""
    params = {"s": c.symbol, "i": c.interval, "t": c.start, "end": c.end, "v": FEATURE_SET_VERSION}
    cur.execute(_DELETE.format(op=">=" if c.from_start else ">"), params)
    if c.joined:
        cur.execute(_staging(c.columns))
        cur.copy_expert("COPY features_staging FROM STDIN (FORMAT binary)", io.BytesIO(c.copy), COPY_CHUNK)
        cur.execute(_insert_joined(c.columns), params)
    elif c.rows:
        cur.copy_expert(_copy_in(c.columns), io.BytesIO(c.copy), COPY_CHUNK)
    if not c.last:
        return None
    last = ms_to_datetime(c.series_last_ms) if c.series_last_ms is not None else c.first_new
    payload = {"symbol": c.symbol, "interval": c.interval, "open_time": last.isoformat(), "rows": c.series_rows}
    cur.execute("SELECT pg_notify(%s, %s)", (FEATURES_CHANNEL, json.dumps(payload)))
    return SeriesUpdate(c.symbol, c.interval, c.series_rows, c.first_new.isoformat(), last.isoformat())


def load_features(engine: Engine, symbol: str, interval: str) -> pd.DataFrame:
    """All stored feature rows of one series, oldest first (for tests and reports)."""
    query = sa.text("SELECT * FROM market.features WHERE symbol = :s AND interval = :i ORDER BY open_time")
    with engine.connect() as conn:
        return pd.read_sql_query(query, conn, params={"s": symbol, "i": interval})
