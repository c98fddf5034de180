"""The per-series summary (sql/020_series_summary.sql): the Trading page and the ETL metrics read O(series) rows,
and what they show equals the full scan of market.candles / market.features they replaced (issue 17)."""

from __future__ import annotations

import time

import msgspec
import pytest
import sqlalchemy as sa

from klinepipe.candle_store import stage_and_merge
from klinepipe.db import raw_transaction
from klinepipe.feature_store import compute_pending_features
from klinepipe.kline import parse_kline_event
from klinepipe.quality import arrived_live_sql
from klinepipe_trading.etl_metrics import read_snapshot
from klinepipe_trading.queries import LIVE_WINDOW, SERIES_SQL, list_series, series_summary
from tests.helpers import closed_events, sample_rows

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
