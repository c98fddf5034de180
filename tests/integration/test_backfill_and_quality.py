"""Backfill against the local fake Binance REST (python-binance pointed at it) and the data-quality checks."""

import zipfile
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from klinepipe.backfill import fetch_klines, fill_gaps, find_gaps, import_files, load_history, load_klines
from klinepipe.kline import row_to_kline
from klinepipe.errors import KlineParseError
from klinepipe.quality import configured_streams, run_quality_checks
from tests.fake_binance import Fault
from tests.helpers import binance_client, sample_rows, write_csv

pytestmark = pytest.mark.integration
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
WIDE = (datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc))


@pytest.fixture
def fake(fake_binance):
    return fake_binance()


def _stored(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT open_time, open, high, low, close, volume, trades, is_closed, source"
                                 " FROM market.candles ORDER BY open_time")).fetchall()


def _with_holes(engine, rows):
    keep = rows[:100] + rows[130:700] + rows[701:1200] + rows[1500:]
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1m", int(r[6]) + 1) for r in keep), source="replay")
    return keep


def test_a_table_with_holes_ends_complete(engine, fake):
    rows = sample_rows(1600)
    fake.seed_klines("BTCUSDT", "1m", rows)
    _with_holes(engine, rows)
    assert [g.missing for g in find_gaps(engine, "BTCUSDT", "1m", *WIDE)] == [30, 1, 300]

    report = fill_gaps(engine, binance_client(fake), *WIDE)

    assert [r["filled"] for r in report] == [30, 1, 300]
    stored = _stored(engine)
    assert [int((s.open_time - EPOCH).total_seconds() * 1000) for s in stored] == [int(r[0]) for r in rows]
    assert [str(s.close) for s in stored] == [r[4] for r in rows]  # exact decimals, as served
    assert all(s.is_closed for s in stored)
    assert sum(s.source == "backfill" for s in stored) == 331
    assert find_gaps(engine, "BTCUSDT", "1m", *WIDE) == []


def test_a_429_with_retry_after_is_honoured(engine, fake):
    rows = sample_rows(2500)
    fake.seed_klines("BTCUSDT", "1m", rows)
    fake.inject(Fault("GET", "/api/v3/klines", 429, -1003, retry_after=7))
    slept = []

    loaded = load_history(engine, binance_client(fake), ["BTCUSDT"], "1m",
                          EPOCH + timedelta(milliseconds=int(rows[0][0])), EPOCH + timedelta(milliseconds=int(rows[-1][0]) + 60_000),
                          sleep=slept.append)

    assert loaded == {"BTCUSDT": 2500}
    assert slept[0] == 7  # waited exactly what Retry-After said, then went on (3 pages of 1,000)
    assert len(_stored(engine)) == 2500


def test_the_still_open_bar_is_not_stored_as_closed(engine, fake):
    rows = sample_rows(10)
    fake.seed_klines("BTCUSDT", "1m", rows)
    now_ms = int(rows[-1][0]) + 30_000  # half-way through the last bar

    got = list(fetch_klines(binance_client(fake), "BTCUSDT", "1m", int(rows[0][0]), int(rows[-1][0]), now_ms=lambda: now_ms))

    assert [k.open_time for k in got] == [int(r[0]) for r in rows[:-1]]


def test_binance_vision_files_import_with_ms_and_us_times(engine, tmp_path):
    rows = sample_rows(5, "BTCUSDT-30m.csv")
    ms_csv = tmp_path / "BTCUSDT-30m-2021-10.csv"
    ms_csv.write_text("".join(",".join(r) + "\n" for r in rows[:3]))
    us_rows = [[str(int(r[0]) * 1000), *r[1:6], str(int(r[6]) * 1000), *r[7:]] for r in rows[3:]]
    us_zip = tmp_path / "BTCUSDT-30m-2021-10-05.zip"
    with zipfile.ZipFile(us_zip, "w") as z:
        z.writestr("BTCUSDT-30m-2021-10-05.csv", "".join(",".join(r) + "\n" for r in us_rows))

    changed = import_files(engine, [ms_csv, us_zip])

    assert list(changed.values()) == [3, 2]
    stored = _stored(engine)
    assert [int((s.open_time - EPOCH).total_seconds() * 1000) for s in stored] == [int(r[0]) for r in rows]
    assert [s.trades for s in stored] == [int(r[8]) for r in rows]


def test_a_bad_file_row_fails_the_import_naming_file_row_and_field_and_stores_nothing(engine, tmp_path):
    rows = sample_rows(5, "BTCUSDT-30m.csv")
    rows[3][4] = "1.5e4"  # the close of the 4th row: PostgreSQL would take it, Binance never writes it
    bad = tmp_path / "BTCUSDT-30m-2021-10.csv"
    bad.write_text("".join(",".join(r) + "\n" for r in rows))

    with pytest.raises(KlineParseError, match=r"BTCUSDT-30m-2021-10.csv row 4: field 'c' is not a plain decimal: '1.5e4'"):
        import_files(engine, [bad])

    assert _stored(engine) == []


def test_quality_checks_pass_on_real_data_and_name_each_problem(engine):
    rows = sample_rows(300)
    _with_holes(engine, rows)  # holes at rows 100-129 and 700: only the first is within 300 rows
    assert all(r.passed for r in run_quality_checks(engine) if r.check in ("ohlc", "overlaps"))
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE market.candles SET low = high + 1 WHERE open_time = (SELECT max(open_time) FROM market.candles)")
        c.exec_driver_sql("UPDATE market.candles SET ingested_at = now() - interval '1 hour'")

    results = {r.check: r for r in run_quality_checks(engine, stale_after=timedelta(minutes=10))}

    assert not results["gaps"].passed and results["gaps"].details["violations"][0]["missing"] == 30
    assert not results["ohlc"].passed and "BTCUSDT 1m" in results["ohlc"].describe()
    assert results["staleness"].passed and results["staleness"].details["streamed"] is False  # replayed history
    assert results["overlaps"].passed
    with engine.connect() as c:
        stored = c.execute(sa.text("SELECT check_name, passed FROM etl.quality_checks ORDER BY id")).fetchall()
    assert ("gaps", False) in stored and ("ohlc", False) in stored and len(stored) == 8


def _live_candles(engine, symbol: str, n: int, *, last_close_ago: timedelta, source: str = "binance") -> None:
    """``n`` closed 1m candles of ``symbol`` ending ``last_close_ago`` before now, each ingested 1 s after it closed:
    what the loader stores while the stream runs (live Binance or the wall-clock demo)."""
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0) - last_close_ago
    rows = [{"s": symbol, "ot": end - timedelta(minutes=n - i), "c": 100 + i} for i in range(n)]
    with engine.begin() as c:
        c.execute(sa.text("""INSERT INTO market.candles (symbol, interval, open_time, close_time, open, high, low, close, volume,
                             is_closed, event_time, source, ingested_at)
                             VALUES (:s, '1m', :ot, :ot + interval '59.999 seconds', :c, :c, :c, :c, 1, true, :ot + interval '1 minute',
                                     :src, :ot + interval '61 seconds')"""), [{**r, "src": source} for r in rows])


def test_imported_history_is_never_stale(engine, tmp_path):
    """A one-off import (file, REST history, replay of old candles) hours ago: every check passes, run after run."""
    file_rows = sample_rows(120, "BTCUSDT-30m.csv")
    import_files(engine, [write_csv(tmp_path / "BTCUSDT-30m-2021-10.csv", file_rows)])
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1m", int(r[6]) + 1) for r in sample_rows(200)), source="backfill")
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1h", int(r[6]) + 1) for r in sample_rows(200, "BTCUSDT-1h.csv")),
                source="replay")
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE market.candles SET ingested_at = now() - interval '3 hours'")

    results = run_quality_checks(engine, stale_after=timedelta(minutes=10))

    staleness = {(r.symbol, r.interval): r for r in results if r.check == "staleness"}
    assert set(staleness) == {("BTCUSDT", "30m"), ("BTCUSDT", "1m"), ("BTCUSDT", "1h")}
    assert all(r.passed for r in results), [r.describe() for r in results if not r.passed]
    assert all(r.details["streamed"] is False for r in staleness.values())


def test_a_streamed_series_that_stops_is_stale_and_one_still_arriving_is_not(engine):
    _live_candles(engine, "BTCUSDT", 30, last_close_ago=timedelta(minutes=40))  # the stream stopped 40 min ago
    _live_candles(engine, "ETHUSDT", 30, last_close_ago=timedelta(minutes=0))   # still arriving
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1h", int(r[6]) + 1) for r in sample_rows(50, "BTCUSDT-1h.csv")),
                source="backfill")
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE market.candles SET ingested_at = now() - interval '1 hour' WHERE interval = '1h'")

    results = run_quality_checks(engine, stale_after=timedelta(minutes=10))

    staleness = {(r.symbol, r.interval): r for r in results if r.check == "staleness"}
    failed = [(r.check, r.symbol, r.interval) for r in results if not r.passed]
    assert failed == [("staleness", "BTCUSDT", "1m")]
    assert staleness[("BTCUSDT", "1m")].details["streamed"] == "arrived live"
    # its last candle was stored 1 s after it closed, 40 min before the current minute began: 39 min 59 s at least
    assert staleness[("BTCUSDT", "1m")].details["age_s"] >= 40 * 60 - 1
    assert staleness[("ETHUSDT", "1m")].passed and staleness[("BTCUSDT", "1h")].details["streamed"] is False


def test_a_subscribed_series_is_checked_even_when_its_candles_are_old(engine):
    """STREAMING_SYMBOLS x STREAMING_INTERVALS: a subscription that delivers nothing is stale, whatever the data."""
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1m", int(r[6]) + 1) for r in sample_rows(50)), source="replay")
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE market.candles SET ingested_at = now() - interval '1 hour'")
    streams = configured_streams({"STREAMING_SYMBOLS": "btcusdt, ETHUSDT", "STREAMING_INTERVALS": "1m,1h"})

    results = run_quality_checks(engine, stale_after=timedelta(minutes=10), streams=streams)

    assert streams == {("BTCUSDT", "1m"), ("BTCUSDT", "1h"), ("ETHUSDT", "1m"), ("ETHUSDT", "1h")}
    assert [(r.check, r.symbol, r.interval, r.details["streamed"]) for r in results if not r.passed] == [
        ("staleness", "BTCUSDT", "1m", "subscribed")]
    assert configured_streams({}) == frozenset()
