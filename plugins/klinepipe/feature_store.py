"""Incremental features: closed candles without a current feature row -> ``market.features``.

For each series with such candles: load ``WARMUP_BARS`` closed candles before the first new one plus
everything after it (binary COPY out), compute the feature set, replace every row from the first new one
on (binary COPY into staging, DELETE + INSERT), and ``NOTIFY klinepipe_features``
(delivered at commit) with the series and its newest open time. One transaction for the whole run.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from klinepipe import FEATURE_SET_VERSION, FEATURES_CHANNEL
from klinepipe.features import FEATURE_COLUMNS, WARMUP_BARS, compute_features
from klinepipe.pgbinary import decode_time_floats, encode_time_floats

log = logging.getLogger(__name__)

_PENDING = """
SELECT c.symbol, c.interval, min(c.open_time)
FROM market.candles c
LEFT JOIN market.features f USING (symbol, interval, open_time)
WHERE c.is_closed AND (f.open_time IS NULL OR f.feature_set_version <> %(v)s)
GROUP BY c.symbol, c.interval
ORDER BY c.symbol, c.interval
"""

_WINDOW_START = """
SELECT coalesce(min(open_time), %(t)s) FROM (
    SELECT open_time FROM market.candles
    WHERE symbol = %(s)s AND interval = %(i)s AND is_closed AND open_time < %(t)s
    ORDER BY open_time DESC LIMIT %(warmup)s
) warm
"""

_WINDOW = """
COPY (SELECT open_time, close::float8, high::float8, low::float8, volume::float8 FROM market.candles
      WHERE symbol = {s} AND interval = {i} AND is_closed AND open_time >= {t} ORDER BY open_time)
TO STDOUT (FORMAT binary)
"""

_STAGING = f"""
CREATE TEMP TABLE IF NOT EXISTS features_staging (open_time timestamptz, {", ".join(f"{c} float8" for c in FEATURE_COLUMNS)})
ON COMMIT DELETE ROWS
"""

# Every row from the first new candle on is recomputed, so the range is replaced: a DELETE of the
# (few) existing rows and a plain INSERT is much cheaper than ON CONFLICT for big recomputes.
_REPLACE = f"""
DELETE FROM market.features WHERE symbol = %(s)s AND interval = %(i)s AND open_time >= %(t)s;
INSERT INTO market.features (symbol, interval, open_time, feature_set_version, close, {", ".join(FEATURE_COLUMNS)})
SELECT %(s)s, %(i)s, s.open_time, %(v)s, c.close, {", ".join(f"NULLIF(s.{c}, 'NaN')" for c in FEATURE_COLUMNS)}
FROM features_staging s
JOIN market.candles c ON c.symbol = %(s)s AND c.interval = %(i)s AND c.open_time = s.open_time;
"""


@dataclass(frozen=True)
class SeriesUpdate:
    symbol: str
    interval: str
    rows: int
    first_open_time: str
    last_open_time: str


def compute_pending_features(engine: Engine) -> list[SeriesUpdate]:
    """Compute and store features for every series with new closed candles; one transaction."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute(_PENDING, {"v": FEATURE_SET_VERSION})
            pending = cur.fetchall()
            cur.execute(_STAGING)
            updates = [update_series(cur, symbol, interval, first) for symbol, interval, first in pending]
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()
    for u in updates:
        log.info("features %s %s: %d rows up to %s", u.symbol, u.interval, u.rows, u.last_open_time)
    return updates


def update_series(cur, symbol: str, interval: str, first_new: datetime) -> SeriesUpdate:
    """Recompute one series from ``first_new`` on, with its warm-up window (staging table must exist)."""
    cur.execute(_WINDOW_START, {"s": symbol, "i": interval, "t": first_new, "warmup": WARMUP_BARS})
    start = cur.fetchone()[0]
    out = io.BytesIO()
    cur.copy_expert(_WINDOW.format(s=_lit(cur, symbol), i=_lit(cur, interval), t=_lit(cur, start)), out)
    times, ohlcv = decode_time_floats(out.getvalue(), 4)
    feats = compute_features(ohlcv[:, 0], ohlcv[:, 1], ohlcv[:, 2], ohlcv[:, 3])
    first_ms = _ms(first_new)
    keep = times >= first_ms
    cur.execute("TRUNCATE features_staging")
    cur.copy_expert("COPY features_staging FROM STDIN (FORMAT binary)",
                    io.BytesIO(encode_time_floats(times[keep], [feats[c][keep] for c in FEATURE_COLUMNS])))
    cur.execute(_REPLACE, {"s": symbol, "i": interval, "v": FEATURE_SET_VERSION, "t": first_new})
    last = _dt(int(times[-1]))
    payload = {"symbol": symbol, "interval": interval, "open_time": last.isoformat(), "rows": int(keep.sum())}
    cur.execute("SELECT pg_notify(%s, %s)", (FEATURES_CHANNEL, json.dumps(payload)))
    return SeriesUpdate(symbol, interval, int(keep.sum()), first_new.isoformat(), last.isoformat())


def _lit(cur, value) -> str:
    return cur.mogrify("%s", (value,)).decode()


def _ms(t: datetime) -> int:
    return int((t - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def load_features(engine: Engine, symbol: str, interval: str) -> pd.DataFrame:
    """All stored feature rows of one series, oldest first (for tests and reports)."""
    query = sa.text("SELECT * FROM market.features WHERE symbol = :s AND interval = :i ORDER BY open_time")
    with engine.connect() as conn:
        return pd.read_sql_query(query, conn, params={"s": symbol, "i": interval})
