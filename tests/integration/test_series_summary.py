"""The per-series summary (sql/020_series_summary.sql): the Trading page and the ETL metrics read O(series) rows,
and what they show equals the full scan of market.candles / market.features they replaced (issue 17)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import msgspec
import pytest
import sqlalchemy as sa

from klinepipe.candle_store import stage_and_merge
from klinepipe.db import raw_transaction
from klinepipe.feature_store import compute_pending_features
from klinepipe.kline import parse_kline_event
from klinepipe.partitions import ensure_partitions
from klinepipe.quality import arrived_live_sql
from klinepipe_trading.etl_metrics import read_snapshot
from klinepipe_trading.queries import (LIVE_WINDOW, POSITIONS_SQL, SERIES_SQL, _PRECISION_SQL, list_series, positions,
                                       series_summary)
from tests.helpers import closed_events, sample_rows, shifted_rows

pytestmark = pytest.mark.integration

MINUTE = 60_000

# What the page and the metrics ran before the summary: aggregates over every stored row.
FULL_SCAN = f"""
WITH c AS (
    SELECT symbol, interval, count(*) AS candles, count(*) FILTER (WHERE is_closed) AS closed,
           max(open_time) AS newest_open_time, max(open_time) FILTER (WHERE is_closed) AS newest_closed_open_time,
           max(close_time) FILTER (WHERE is_closed) AS newest_closed_close_time, max(ingested_at) AS newest_ingested_at,
           (array_agg(source ORDER BY open_time DESC))[1] AS newest_source,
           coalesce(bool_or({arrived_live_sql(":live_window", "interval '10 minutes'")}), false) AS arrived_live
    FROM market.candles GROUP BY symbol, interval),
f AS (SELECT symbol, interval, count(*) AS features, max(open_time) AS newest_feature_open_time
      FROM market.features GROUP BY symbol, interval)
SELECT c.*, coalesce(f.features, 0) AS features, f.newest_feature_open_time
FROM c LEFT JOIN f USING (symbol, interval) ORDER BY symbol, interval
"""
COLUMNS = ("symbol", "interval", "candles", "closed", "features", "newest_open_time", "newest_closed_open_time",
           "newest_closed_close_time", "newest_ingested_at", "newest_source", "arrived_live", "newest_feature_open_time")


def both(engine) -> tuple[list[tuple], list[tuple]]:
    with engine.connect() as conn:
        params = {"live_window": LIVE_WINDOW}
        summary = [tuple(r[c] for c in COLUMNS) for r in series_summary(conn, LIVE_WINDOW)]
        full = [tuple(r._mapping[c] for c in COLUMNS) for r in conn.execute(sa.text(FULL_SCAN), params)]
    return summary, full


def stale(engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT EXISTS (SELECT FROM market.series_summary_stale)")).scalar()


def merge(engine, events: list[bytes], source: str) -> None:
    with raw_transaction(engine) as cur:
        stage_and_merge(cur, [(parse_kline_event(e), source) for e in events])


def now_rows(rows: list[list[str]], last_close_ms: int) -> list[list[str]]:
    """``rows`` moved in time so that the last one closes at ``last_close_ms``: candles that can arrive live."""
    shift = last_close_ms - int(rows[-1][6])
    return [[str(int(r[0]) + shift), *r[1:6], str(int(r[6]) + shift), *r[7:]] for r in rows]


def in_progress(event: bytes) -> bytes:
    e = msgspec.json.decode(event)
    e["k"]["x"] = False
    e["E"] -= 1
    return msgspec.json.encode(e)


def test_the_summary_equals_the_full_scan_through_every_kind_of_write(db):
    history = sample_rows(300)
    merge(db, closed_events(history), "file")                                   # imported history
    merge(db, closed_events(history[:40], "ETHUSDT"), "backfill")              # a second series
    compute_pending_features(db)
    assert both(db)[0] == both(db)[1]

    live = now_rows(sample_rows(20), int(time.time() * 1000) - 1000)
    events = closed_events(live)
    merge(db, [in_progress(e) for e in events[-3:]], "binance")              # the bars being built: open
    merge(db, events[:-1], "binance")                                         # ... then closed, live
    summary, full = both(db)
    assert summary == full
    assert [r[10] for r in summary] == [True, False]  # BTCUSDT arrived live, ETHUSDT did not
    assert summary[0][3] == summary[0][2] - 1          # one candle still open

    merge(db, events[-1:], "gap_fill")                                        # the last one closes by REST
    merge(db, closed_events(history[:10]), "backfill")                        # the same candles again: no change
    compute_pending_features(db)
    assert not stale(db)  # the merge kept the summary itself: nothing to rebuild
    assert both(db)[0] == both(db)[1]

    with db.begin() as conn:                                                  # a recompute from a point on
        conn.execute(sa.text("DELETE FROM market.features WHERE symbol = 'BTCUSDT' AND open_time >= "
                             "(SELECT max(open_time) - interval '100 minutes' FROM market.features WHERE symbol = 'BTCUSDT')"))
        conn.execute(sa.text("DELETE FROM market.candles WHERE symbol = 'ETHUSDT' AND open_time < "
                             "(SELECT min(open_time) + interval '5 minutes' FROM market.candles WHERE symbol = 'ETHUSDT')"))
    assert stale(db)  # candles deleted by hand: the next read rebuilds the summary, once
    assert both(db)[0] == both(db)[1] and not stale(db)
    with db.begin() as conn:                                                  # a candle written by hand
        conn.execute(sa.text("INSERT INTO market.candles SELECT * FROM market.candles WHERE symbol = 'ETHUSDT' LIMIT 0"))
        conn.execute(sa.text("UPDATE market.candles SET volume = volume + 1 WHERE symbol = 'ETHUSDT' AND open_time = "
                             "(SELECT max(open_time) FROM market.candles WHERE symbol = 'ETHUSDT')"))
    assert stale(db)
    assert both(db)[0] == both(db)[1]
    with db.begin() as conn:
        conn.execute(sa.text("TRUNCATE market.features"))
    assert both(db)[0] == both(db)[1]
    compute_pending_features(db, rescan=True)
    summary, full = both(db)
    assert summary == full and summary[0][4] > 0


def test_the_page_and_the_metrics_show_what_the_summary_holds(db):
    merge(db, closed_events(sample_rows(120)), "replay")
    compute_pending_features(db)
    with db.connect() as conn:
        (page,) = list_series(conn)
        (metrics,) = read_snapshot(conn).series

    assert (page["symbol"], page["candles"], page["replayed"], page["streamed"]) == ("BTCUSDT", 120, True, False)
    assert (metrics["candles"], metrics["closed"], metrics["features"], metrics["features_lag_s"]) == (120, 120, 120, 0)


def _rows_read(node: dict, relations: tuple[str, ...]) -> int:
    """Rows the plan read from ``relations`` (their partitions too): returned or filtered out, over all loops."""
    own = 0
    if node.get("Relation Name", "").startswith(relations):
        own = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * node.get("Actual Loops", 1)
    return own + sum(_rows_read(child, relations) for child in node.get("Plans", []))


def test_a_refresh_reads_each_series_by_index_not_the_whole_history(db):
    rows = sample_rows(3000)
    for symbol in ("BTCUSDT", "ETHUSDT", "BNBUSDT"):
        merge(db, closed_events(rows, symbol), "file")
    compute_pending_features(db)
    with db.begin() as conn:
        conn.execute(sa.text("ANALYZE market.candles; ANALYZE market.features; ANALYZE market.series_summary"))
        (plan,) = conn.execute(sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {SERIES_SQL}"), {"live_window": LIVE_WINDOW}).one()

        parts = conn.execute(sa.text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'market.candles'::regclass")).scalar()

    top = plan[0]["Plan"]
    assert top["Actual Rows"] == 3  # three series out, from a few rows per series and partition, of 9,000 candles:
    assert _rows_read(top, ("candles", "features")) <= 3 * 3 * max(parts, 1)  # newest, newest closed, newest feature


def _ms(year: int, month: int, day: int = 10) -> int:
    return int(datetime(year, month, day, tzinfo=timezone.utc).timestamp() * 1000)


@pytest.fixture
def year_of_partitions(db):
    """Monthly partitions for 2019 (dropped afterwards: the session's database is shared)."""
    parts = "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent IN ('market.candles'::regclass, 'market.features'::regclass)"
    with db.connect() as conn:
        before = set(conn.exec_driver_sql(parts).scalars())
    ensure_partitions(db, datetime(2019, 1, 1, tzinfo=timezone.utc), datetime(2019, 12, 1, tzinfo=timezone.utc))
    yield db
    with db.begin() as conn:
        conn.exec_driver_sql("TRUNCATE market.candles, market.features")
        conn.exec_driver_sql("DELETE FROM trading.positions WHERE sleeve = 's1'; DELETE FROM trading.sleeves WHERE sleeve = 's1'")
        for part in set(conn.exec_driver_sql(parts).scalars()) - before:
            conn.exec_driver_sql(f"DROP TABLE {part}")


def test_the_newest_closed_candle_and_feature_far_behind_the_newest_candle_are_still_found(year_of_partitions):
    db = year_of_partitions
    rows = sample_rows(60)
    merge(db, closed_events(shifted_rows(rows, _ms(2019, 3))), "file")           # closed candles in March
    compute_pending_features(db)
    merge(db, [in_progress(e) for e in closed_events(shifted_rows(rows[:1], _ms(2019, 6)))], "binance")  # open, in June
    summary, full = both(db)
    assert summary == full
    (row,) = summary
    assert (row[2], row[3]) == (61, 60)                                         # 61 candles, 60 closed
    assert row[6].month == 3 and row[11].month == 3 and row[5].month == 6      # newest closed / feature: March


def test_a_refresh_reads_each_series_in_one_months_partitions_however_many_hold_its_history(year_of_partitions):
    """Two series with candles in every month of 2019 (12 partitions each of candles and features, and the
    DEFAULT one), a third in March 2020 (in the DEFAULT partition, later than all of them): the page's and the metrics' per-series lookups, the positions' newest close and the precision
    sample scan a few partitions per series, not every partition (before sql/032, each lookup probed them all)."""
    db = year_of_partitions
    rows = sample_rows(60)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for month in range(1, 13):
            merge(db, closed_events(shifted_rows(rows[(month - 1) * 5:month * 5], _ms(2019, month)), symbol), "file")
    merge(db, closed_events(shifted_rows(rows[:5], _ms(2020, 3)), "XRPUSDT"), "file")  # a later series: in DEFAULT
    compute_pending_features(db)
    with db.begin() as conn:
        conn.execute(sa.text("ANALYZE market.candles; ANALYZE market.features; ANALYZE market.series_summary"))
        conn.execute(sa.text("INSERT INTO trading.sleeves (mode, sleeve, symbol, interval, strategy) VALUES"
                             " ('paper', 's1', 'BTCUSDT', '1m', 'sma_cross') ON CONFLICT DO NOTHING"))
        conn.execute(sa.text("INSERT INTO trading.positions (mode, sleeve, symbol, quantity, avg_price) VALUES"
                             " ('paper', 's1', 'BTCUSDT', 1, 100) ON CONFLICT DO NOTHING"))
        parts = conn.execute(sa.text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'market.candles'::regclass")).scalar()
        plans = {name: conn.execute(sa.text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), params).one()[0][0]["Plan"]
                 for name, sql, params in (
                     ("series", SERIES_SQL, {"live_window": LIVE_WINDOW}),
                     ("positions", POSITIONS_SQL, {"mode": "paper"}),
                     ("precision", _PRECISION_SQL, {"symbols": ["BTCUSDT", "ETHUSDT"], "n": 500}))}
        (position,) = positions(conn, "paper")
        newest_close = conn.execute(sa.text("SELECT close FROM market.candles WHERE symbol = 'BTCUSDT'"
                                            " ORDER BY open_time DESC LIMIT 1")).scalar()

    assert parts >= 13
    assert plans["series"]["Actual Rows"] == 3
    assert both(db)[0] == both(db)[1]
    assert position["last_close"] == float(newest_close)
    # partition scans run, over all loops: per series the newest candle (1), newest closed (<= 2 months), newest
    # feature (<= 2 months); per sleeve the newest close (1); per series of a symbol the precision sample (500
    # minutes back: <= 2 months). However many other partitions the session's database holds (later months too)
    assert _scans(plans["series"], ("candles", "features")) <= 3 * (1 + 2 + 2)
    assert _scans(plans["positions"], ("candles",)) <= 1
    assert _scans(plans["precision"], ("candles",)) <= 2 * 2


def _scans(node: dict, relations: tuple[str, ...]) -> int:
    """How many times the plan scanned a partition of ``relations``: each scan node's loops that ran."""
    own = node.get("Actual Loops", 0) if node.get("Relation Name", "").startswith(relations) else 0
    return own + sum(_scans(child, relations) for child in node.get("Plans", []))

