"""Incremental features: closed candles without a current feature row -> ``market.features``.

For each series with such candles, load ``WARMUP_BARS`` closed candles before the first new one plus
everything after it, compute the feature set, upsert every row from the first new one on, and
``NOTIFY klinepipe_features`` (delivered at commit) with the series and its newest open time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from psycopg2.extras import execute_values
from sqlalchemy.engine import Engine

from klinepipe import FEATURE_SET_VERSION, FEATURES_CHANNEL
from klinepipe.features import FEATURE_COLUMNS, WARMUP_BARS, compute_features

log = logging.getLogger(__name__)

_PENDING = """
SELECT c.symbol, c.interval, min(c.open_time)
FROM market.candles c
LEFT JOIN market.features f USING (symbol, interval, open_time)
WHERE c.is_closed AND (f.open_time IS NULL OR f.feature_set_version <> %(v)s)
GROUP BY c.symbol, c.interval
ORDER BY c.symbol, c.interval
"""

_WINDOW = """
SELECT open_time, close FROM (
    SELECT open_time, close FROM market.candles
    WHERE symbol = %(s)s AND interval = %(i)s AND is_closed AND open_time < %(t)s
    ORDER BY open_time DESC LIMIT %(warmup)s
) warm
UNION ALL
SELECT open_time, close FROM market.candles
WHERE symbol = %(s)s AND interval = %(i)s AND is_closed AND open_time >= %(t)s
ORDER BY open_time
"""

_UPSERT = f"""
INSERT INTO market.features (symbol, interval, open_time, feature_set_version, close, {", ".join(FEATURE_COLUMNS)})
VALUES %s
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
    feature_set_version = EXCLUDED.feature_set_version, close = EXCLUDED.close,
    {", ".join(f"{c} = EXCLUDED.{c}" for c in FEATURE_COLUMNS)}, computed_at = now()
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
            updates = [_update_series(cur, symbol, interval, first) for symbol, interval, first in pending]
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()
    for u in updates:
        log.info("features %s %s: %d rows up to %s", u.symbol, u.interval, u.rows, u.last_open_time)
    return updates


def _update_series(cur, symbol: str, interval: str, first_new) -> SeriesUpdate:
    cur.execute(_WINDOW, {"s": symbol, "i": interval, "t": first_new, "warmup": WARMUP_BARS})
    rows = cur.fetchall()
    open_times = [r[0] for r in rows]
    closes = [r[1] for r in rows]
    feats = compute_features(np.array([float(c) for c in closes]))
    start = open_times.index(first_new)
    values = []
    for j in range(start, len(rows)):
        values.append(
            (symbol, interval, open_times[j], FEATURE_SET_VERSION, closes[j], *(_num(feats[c][j]) for c in FEATURE_COLUMNS))
        )
    execute_values(cur, _UPSERT, values, page_size=5000)
    last = open_times[-1]
    payload = {"symbol": symbol, "interval": interval, "open_time": last.isoformat(), "rows": len(values)}
    cur.execute("SELECT pg_notify(%s, %s)", (FEATURES_CHANNEL, json.dumps(payload)))
    return SeriesUpdate(symbol, interval, len(values), first_new.isoformat(), last.isoformat())


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def load_features(engine: Engine, symbol: str, interval: str) -> pd.DataFrame:
    """All stored feature rows of one series, oldest first (for tests and reports)."""
    query = sa.text("SELECT * FROM market.features WHERE symbol = :s AND interval = :i ORDER BY open_time")
    with engine.connect() as conn:
        return pd.read_sql_query(query, conn, params={"s": symbol, "i": interval})
