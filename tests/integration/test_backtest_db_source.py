"""Backtests over stored candles: ``market.candles`` in real PostgreSQL gives what the same file gives."""

from datetime import datetime, timezone

import pandas as pd
import pytest

from tests.helpers import sample_rows, seed_candles, write_csv
from trader.backtest.candles import read_kline_file
from trader.backtest.db_source import load_candles_db
from trader.backtest.service import BacktestRequest, execute

pytestmark = pytest.mark.integration
N = 1500


def test_stored_candles_equal_the_file_they_came_from(engine, database_url, tmp_path):
    rows = sample_rows(N)
    seed_candles(engine, rows)

    stored = load_candles_db(database_url, "btcusdt", "1m")

    pd.testing.assert_frame_equal(stored, read_kline_file(write_csv(tmp_path / "BTCUSDT-1m.csv", rows)))


def test_the_date_range_is_start_inclusive_end_exclusive(engine, database_url):
    rows = sample_rows(N)
    seed_candles(engine, rows)
    start = datetime.fromtimestamp(int(rows[100][0]) / 1000, timezone.utc)
    end = datetime.fromtimestamp(int(rows[400][0]) / 1000, timezone.utc)

    stored = load_candles_db(database_url, "BTCUSDT", "1m", start, end)

    assert stored["open_time"].tolist() == [int(r[0]) for r in rows[100:400]]


def test_a_backtest_from_postgres_equals_the_backtest_from_the_csv(engine, database_url, tmp_path):
    rows = sample_rows(N)
    seed_candles(engine, rows)
    csv = write_csv(tmp_path / "BTCUSDT-1m.csv", rows)

    from_db = execute(BacktestRequest(out_dir=tmp_path / "db", database_url=database_url, symbol="BTCUSDT", interval="1m",
                                      html=False, png=False))
    from_csv = execute(BacktestRequest(out_dir=tmp_path / "csv", csv=csv, html=False, png=False))

    assert {k: v for k, v in from_db["summary"].items() if k != "source"} == \
        {k: v for k, v in from_csv["summary"].items() if k != "source"}
    assert (tmp_path / "db" / "trades.csv").read_text() == (tmp_path / "csv" / "trades.csv").read_text()


def test_no_candles_is_a_clear_error(engine, database_url):
    with pytest.raises(LookupError, match="no closed candles for ETHUSDT 1m"):
        load_candles_db(database_url, "ETHUSDT", "1m")
