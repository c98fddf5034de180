"""Hop 2: market.candles -> market.features with NOTIFY, against real PostgreSQL."""

import json
import select

import numpy as np
import psycopg2
import pytest
import sqlalchemy as sa

from klinepipe import FEATURE_SET_VERSION
from klinepipe.candle_store import stage_and_merge
from klinepipe.db import raw_transaction
from klinepipe.feature_store import compute_pending_features, load_features, write_series
from klinepipe.features import FEATURE_COLUMNS, compute_features
from klinepipe.kline import parse_kline_event
from tests.helpers import closed_events, dsn_of, sample_rows

pytestmark = pytest.mark.integration


def _features(rows):
    cols = np.array([[float(r[j]) for j in (4, 2, 3, 5)] for r in rows])
    return compute_features(cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3])


def _load(engine, events):
    with raw_transaction(engine) as cur:
        stage_and_merge(cur, [(parse_kline_event(e), "replay") for e in events])


def _listen(database_url):
    conn = psycopg2.connect(dsn_of(database_url))
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


def test_close_is_the_candles_exact_decimal_and_warm_up_values_are_null(engine):
    _load(engine, closed_events(sample_rows(300)))
    compute_pending_features(engine)
    with engine.connect() as c:
        mismatched = c.execute(sa.text(
            "SELECT count(*) FROM market.features f JOIN market.candles k USING (symbol, interval, open_time)"
            " WHERE f.close::text <> k.close::text")).scalar()
        nulls = c.execute(sa.text("SELECT count(*) FILTER (WHERE sma_50 IS NULL), count(*) FILTER (WHERE ret_1 IS NULL),"
                                  " count(*) FILTER (WHERE sma_50 = 'NaN' OR macd = 'NaN') FROM market.features")).one()
    assert mismatched == 0  # same value and the same number of decimals
    assert tuple(nulls) == (49, 1, 0)


@pytest.mark.parametrize("price", ["0.123456789", "95000000000.5", "0.000000001"])
def test_a_close_beyond_the_8_decimal_encoding_is_still_exact(engine, price):
    """More than 8 decimals, or too big for 1e-8 units in a bigint: that series takes the staging + join path."""
    events = [e.replace(b'"o":"', b'"o":"X', 1) for e in closed_events(sample_rows(60))]
    odd = [json.loads(e.replace(b'"o":"X', b'"o":"', 1)) for e in events]
    for e in odd[30:]:
        e["k"].update(o=price, h=price, l=price, c=price)
    _load(engine, [json.dumps(e).encode() for e in odd] + closed_events(sample_rows(60), symbol="ETHUSDT"))

    updates = compute_pending_features(engine)

    assert sorted((u.symbol, u.rows) for u in updates) == [("BTCUSDT", 60), ("ETHUSDT", 60)]
    with engine.connect() as c:
        closes = c.execute(sa.text("SELECT f.close::text, k.close::text FROM market.features f"
                                   " JOIN market.candles k USING (symbol, interval, open_time)")).fetchall()
    assert len(closes) == 120 and all(f == k for f, k in closes)
    assert sum(1 for f, _ in closes if f == price) == 30


def test_a_backfilled_gap_rewrites_only_the_rows_it_can_change(engine):
    """Filling a hole in the middle of a series recomputes the hole and the WARMUP_BARS rows after it;
    every stored row then equals a full recompute, and the rows past the bound were not rewritten."""
    from klinepipe.features import WARMUP_BARS

    rows = sample_rows(4_000)
    hole = rows[1_500:1_510]
    _load(engine, closed_events(rows[:1_500] + rows[1_510:]))
    compute_pending_features(engine)
    with engine.connect() as c:
        before = dict(c.execute(sa.text("SELECT open_time, computed_at FROM market.features")).fetchall())

    _load(engine, closed_events(hole))
    (update,) = compute_pending_features(engine)

    assert update.rows == len(hole) + WARMUP_BARS
    stored = load_features(engine, "BTCUSDT", "1m")
    full = _features(rows)
    assert len(stored) == 4_000
    for col in FEATURE_COLUMNS:
        np.testing.assert_array_equal(stored[col].to_numpy(dtype=float), full[col], err_msg=col)
    after = dict(zip(stored["open_time"], stored["computed_at"]))
    rewritten = sorted(t for t in after if before.get(t) != after[t])
    assert len(rewritten) == len(hole) + WARMUP_BARS
    assert rewritten[0] == stored["open_time"][1_500] and rewritten[-1] == stored["open_time"][1_510 + WARMUP_BARS - 1]


def test_a_corrected_closed_candle_gets_its_features_recomputed(engine):
    """A later closed event for a stored candle (say, a backfill correcting it) changes its features too:
    every row still equals a full recompute over the corrected candles."""
    rows = sample_rows(300)
    _load(engine, closed_events(rows))
    compute_pending_features(engine)
    fixed = [*rows[200][:4], str(round(float(rows[200][4]) * 1.01, 2)), *rows[200][5:]]  # a new close, within high/low
    fixed[2] = max(fixed[2], fixed[4], key=float)
    event = closed_events([fixed])[0].replace(b'"E":', b'"E":9', 1)  # a later event time

    _load(engine, [event])
    (update,) = compute_pending_features(engine)

    corrected = rows[:200] + [fixed] + rows[201:]
    stored = load_features(engine, "BTCUSDT", "1m")
    assert update.rows == 100 and str(stored["close"][200]) == fixed[4]
    full = _features(corrected)
    for col in FEATURE_COLUMNS:
        np.testing.assert_array_equal(stored[col].to_numpy(dtype=float), full[col], err_msg=col)


def test_work_comes_from_the_merge_queue_and_a_rescan_finds_what_bypassed_it(engine):
    """After the first run (a scan) only candles queued by a merge are looked at, so finding the work does
    not grow with the history; a candle written by hand, past the merge, waits for ``rescan``."""
    rows = sample_rows(120)
    with engine.begin() as c:  # by hand, before any features run: the first run scans and finds it
        c.execute(sa.text(_INSERT_BY_HAND), _by_hand(rows[0]))
    assert [u.rows for u in compute_pending_features(engine)] == [1]
    with engine.begin() as c:
        c.execute(sa.text(_INSERT_BY_HAND), _by_hand(rows[1]))
    _load(engine, closed_events(rows[:50], symbol="ETHUSDT"))

    queued = compute_pending_features(engine)
    rescanned = compute_pending_features(engine, rescan=True)

    assert [(u.symbol, u.rows) for u in queued] == [("ETHUSDT", 50)]  # not the BTCUSDT candle written by hand
    assert [(u.symbol, u.rows) for u in rescanned] == [("BTCUSDT", 1)]
    assert len(load_features(engine, "BTCUSDT", "1m")) == 2
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM etl.features_pending")).scalar() == 0


_INSERT_BY_HAND = """
INSERT INTO market.candles (symbol, interval, open_time, close_time, open, high, low, close, volume, is_closed, event_time, source)
VALUES ('BTCUSDT', '1m', to_timestamp(:t / 1000.0), to_timestamp(:ct / 1000.0), :o, :h, :l, :c, :v, true, to_timestamp(:ct / 1000.0), 'hand')
"""


def _by_hand(row):
    return {"t": int(row[0]), "ct": int(row[6]), "o": row[1], "h": row[2], "l": row[3], "c": row[4], "v": row[5]}


def test_a_feature_set_change_rescans_and_recomputes_the_outdated_rows(engine):
    rows = sample_rows(200)
    _load(engine, closed_events(rows))
    compute_pending_features(engine)
    with engine.begin() as c:  # as the database looks after an upgrade to a new feature set
        c.execute(sa.text("UPDATE market.features SET feature_set_version = 'v1', rsi_14 = -1 WHERE open_time >= "
                          "(SELECT open_time FROM market.features ORDER BY open_time OFFSET 150 LIMIT 1)"))
        c.execute(sa.text("UPDATE etl.feature_state SET feature_set_version = 'v1'"))

    (update,) = compute_pending_features(engine)

    stored = load_features(engine, "BTCUSDT", "1m")
    assert update.rows == 50 and set(stored["feature_set_version"]) == {FEATURE_SET_VERSION}
    np.testing.assert_array_equal(stored["rsi_14"].to_numpy(dtype=float), _features(rows)["rsi_14"])
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT feature_set_version FROM etl.feature_state")).scalar() == FEATURE_SET_VERSION
    assert compute_pending_features(engine) == []


def _stored(engine):
    with engine.connect() as c:
        return c.execute(sa.text(f"SELECT symbol, interval, open_time, feature_set_version, close::text, "
                                 f"{', '.join(FEATURE_COLUMNS)} FROM market.features ORDER BY 1, 2, 3")).fetchall()


@pytest.mark.parametrize("window_rows", [700, 1000, 3999])  # 1000 divides the 4000 candles: an empty last window
def test_a_full_recompute_in_windows_equals_one_in_one_piece(engine, database_url, monkeypatch, window_rows):
    """A long series is read, computed and written WINDOW_ROWS new rows at a time, each window computed over the
    warm-up candles before it; every row equals the one-piece run's and a compute over the whole history, bit for
    bit, and each series still gets one update and one notification, with its totals."""
    from klinepipe import feature_store

    rows = sample_rows(4_000)
    odd = [[*r[:4], "0.123456789", *r[5:]] for r in sample_rows(2_500)]  # the staging + join path, in windows too
    odd = [[r[0], r[4], max(r[2], r[4], key=float), min(r[3], r[4], key=float), *r[4:]] for r in odd]
    _load(engine, closed_events(rows) + closed_events(odd, symbol="ETHUSDT"))
    monkeypatch.setattr(feature_store, "WINDOW_ROWS", 10**9)
    whole = sorted((u.symbol, u.rows) for u in compute_pending_features(engine))
    one_piece = _stored(engine)
    with engine.begin() as c:
        c.execute(sa.text("TRUNCATE market.features; DELETE FROM etl.feature_state"))
    writes = []
    monkeypatch.setattr(feature_store, "WINDOW_ROWS", window_rows)
    monkeypatch.setattr(feature_store, "write_series", lambda cur, w: writes.append(w) or write_series(cur, w))
    listener = _listen(database_url)

    updates = compute_pending_features(engine)

    assert whole == [("BTCUSDT", 4_000), ("ETHUSDT", 2_500)]
    assert sorted((u.symbol, u.rows) for u in updates) == whole
    windows = {s: [w for w in writes if w.symbol == s] for s in ("BTCUSDT", "ETHUSDT")}
    for symbol, n in whole:  # full windows, then the rest (or an empty last window, when it divides)
        assert len(windows[symbol]) == -(-n // window_rows) + (n % window_rows == 0)
        first_two = [min(window_rows, n), min(window_rows, n - window_rows)][:len(windows[symbol])]
        assert [w.rows for w in windows[symbol]][:2] == first_two
        assert sum(w.rows for w in windows[symbol]) == n and [w.last for w in windows[symbol]].count(True) == 1
    assert all(w.joined for w in windows["ETHUSDT"] if w.rows)
    assert _stored(engine) == one_piece
    stored = load_features(engine, "BTCUSDT", "1m")
    for col in FEATURE_COLUMNS:
        np.testing.assert_array_equal(stored[col].to_numpy(dtype=float), _features(rows)[col], err_msg=col)
    deadline = [listener]
    while select.select(deadline, [], [], 5)[0]:
        listener.poll()
        if len(listener.notifies) >= 2:
            break
    payloads = sorted((p["symbol"], p["rows"], p["open_time"]) for p in (json.loads(n.payload) for n in listener.notifies))
    assert [p[:2] for p in payloads] == whole
    assert payloads[0][2] == stored["open_time"].iloc[-1].isoformat()


def test_a_recompute_in_windows_replaces_stored_rows_and_leaves_the_rest(engine, monkeypatch):
    """New candles on top of stored features, recomputed in windows after the warm-up candles before them, and a
    changed spec set that recomputes (deletes and rewrites, window by window) the whole stored history."""
    from klinepipe import feature_store

    monkeypatch.setattr(feature_store, "WINDOW_ROWS", 600)
    rows = sample_rows(4_000)
    _load(engine, closed_events(rows[:1_700]))
    compute_pending_features(engine)
    _load(engine, closed_events(rows[1_700:]))
    (update,) = compute_pending_features(engine)
    assert update.rows == 2_300
    with engine.begin() as c:  # as after a change of the spec set: the whole history again
        c.execute(sa.text("UPDATE etl.feature_state SET spec_set = 'other'"))
        c.execute(sa.text("UPDATE market.features SET rsi_14 = -1"))

    (update,) = compute_pending_features(engine)

    assert update.rows == 4_000
    stored = load_features(engine, "BTCUSDT", "1m")
    assert len(stored) == 4_000
    for col in FEATURE_COLUMNS:
        np.testing.assert_array_equal(stored[col].to_numpy(dtype=float), _features(rows)[col], err_msg=col)


def test_the_whole_history_scan_finds_every_series_from_its_ends(engine):
    """After a spec-set change every series is found by skipping along the primary key: the same series and first /
    last closed candles as grouping every candle, a series with no closed candle left out."""
    from klinepipe.feature_store import _EVERYTHING

    rows = sample_rows(300)
    five = [[r[0], *r[1:6], str(int(r[0]) + 299_999), *r[7:]] for r in rows if int(r[0]) % 300_000 == 0]

    def unclosed(events):
        return [e.replace(b'"x":true', b'"x":false') for e in events]

    _load(engine, closed_events(rows) + closed_events(five, interval="5m") + closed_events(rows[50:299], symbol="ETHUSDT")
          + unclosed(closed_events(rows[299:], symbol="ETHUSDT")) + unclosed(closed_events(rows[:1], symbol="XRPUSDT"))
          + closed_events(rows[:10], symbol="ADAUSDT"))
    with engine.connect() as c:
        found = c.exec_driver_sql(_EVERYTHING).fetchall()
        grouped = c.exec_driver_sql("SELECT symbol, interval, min(open_time), max(open_time) FROM market.candles WHERE is_closed"
                                    " GROUP BY 1, 2 ORDER BY 1, 2").fetchall()

    assert [tuple(r) for r in found] == [tuple(r) for r in grouped]
    assert [(s, i) for s, i, *_ in found] == [("ADAUSDT", "1m"), ("BTCUSDT", "1m"), ("BTCUSDT", "5m"), ("ETHUSDT", "1m")]
    assert found[3][3] < grouped[1][3]  # ETHUSDT's last candle is in progress: its last closed one is the one before


def test_the_readers_planner_setting_does_not_outlive_the_run(engine):
    """The reader plans its window reads, and the writer its whole-history search, with sorting off: the writer's
    transaction commits, so its setting must be local and set back; both pooled connections plan with the default."""
    _load(engine, closed_events(sample_rows(100)))
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM etl.feature_state"))  # the whole-history path: the writer sets it too

    compute_pending_features(engine)

    with engine.connect() as a, engine.connect() as b:  # both connections the run used, back from the pool
        assert [x.exec_driver_sql("SHOW enable_sort").scalar() for x in (a, b)] == ["on", "on"]
