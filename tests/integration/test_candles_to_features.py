"""Hop 2: market.candles -> market.features with NOTIFY, against real PostgreSQL."""

import json
import select

import numpy as np
import psycopg2
import pytest
import sqlalchemy as sa

from klinepipe.candle_store import stage_and_merge
from klinepipe.feature_store import compute_pending_features, load_features
from klinepipe.features import FEATURE_COLUMNS, compute_features
from klinepipe.kline import parse_kline_event
from tests.helpers import closed_events, sample_rows

pytestmark = pytest.mark.integration


def _features(rows):
    cols = np.array([[float(r[j]) for j in (4, 2, 3, 5)] for r in rows])
    return compute_features(cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3])


def _load(engine, events):
    raw = engine.raw_connection()
    with raw.cursor() as cur:
        stage_and_merge(cur, [(parse_kline_event(e), "replay") for e in events])
    raw.commit()
    raw.close()


def _listen(database_url):
    conn = psycopg2.connect(sa.engine.make_url(database_url).render_as_string(hide_password=False).replace("+psycopg2", ""))
    conn.autocommit = True
    conn.cursor().execute("LISTEN klinepipe_features")
    return conn


def test_features_for_new_closed_candles_and_a_notification(engine, database_url):
    rows = sample_rows(400)
    listener = _listen(database_url)
    _load(engine, closed_events(rows))

    updates = compute_pending_features(engine)

    assert [(u.symbol, u.interval, u.rows) for u in updates] == [("BTCUSDT", "1m", 400)]
    stored = load_features(engine, "BTCUSDT", "1m")
    assert len(stored) == 400 and stored["open_time"].is_unique
    want = _features(rows)
    for col in FEATURE_COLUMNS:
        np.testing.assert_allclose(stored[col].to_numpy(dtype=float), want[col], rtol=1e-12, equal_nan=True)
    assert select.select([listener], [], [], 5)[0]
    listener.poll()
    payload = json.loads(listener.notifies[-1].payload)
    assert payload["symbol"] == "BTCUSDT" and payload["rows"] == 400
    assert compute_pending_features(engine) == []  # nothing new: nothing done


def test_incremental_runs_equal_one_full_run(engine):
    rows = sample_rows(1500)
    for chunk in (rows[:1200], rows[1200:1250], rows[1250:]):
        _load(engine, closed_events(chunk))
        compute_pending_features(engine)
    incremental = load_features(engine, "BTCUSDT", "1m")

    full = _features(rows)

    assert len(incremental) == 1500
    for col in FEATURE_COLUMNS:  # identical, not just close: stored float8 round-trips exactly
        np.testing.assert_array_equal(incremental[col].to_numpy(dtype=float), full[col], err_msg=col)


def test_in_progress_candles_get_no_features(engine):
    events = closed_events(sample_rows(5))
    events[-1] = events[-1].replace(b'"x":true', b'"x":false')
    _load(engine, events)

    (update,) = compute_pending_features(engine)

    assert update.rows == 4
