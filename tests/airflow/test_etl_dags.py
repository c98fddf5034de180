"""backfill_klines and data_quality run with dag.test() against real PostgreSQL and the fake Binance REST."""

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from klinepipe.backfill import load_klines
from klinepipe.kline import row_to_kline
from tests.conftest import ROOT, airflow_connections
from tests.helpers import sample_rows

pytestmark = [pytest.mark.airflow, pytest.mark.integration]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def dags(airflow_env, database_url, kafka_bootstrap, monkeypatch):
    for key, value in airflow_connections(database_url, kafka_bootstrap).items():
        monkeypatch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).dags


def _count(engine) -> int:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM market.candles WHERE is_closed")).scalar()


def test_history_load_from_the_trigger_form_params(dags, engine, monkeypatch, fake_binance):
    rows = sample_rows(1200)
    monkeypatch.setenv("BINANCE_REST_URL", fake_binance(klines=rows).url)
    start = EPOCH + timedelta(milliseconds=int(rows[0][0]))
    end = EPOCH + timedelta(milliseconds=int(rows[-1][0]) + 60_000)

    run = dags["backfill_klines"].test(run_conf={"symbols": ["BTCUSDT"], "interval": "1m",
                                                 "start": start.isoformat(), "end": end.isoformat()})

    assert run.state == "success"
    assert _count(engine) == 1200


def test_scheduled_backfill_fills_gaps(dags, engine, monkeypatch, fake_binance):
    rows = sample_rows(600)
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1m", int(r[6]) + 1) for r in rows[:200] + rows[260:]), source="replay")
    monkeypatch.setenv("BINANCE_REST_URL", fake_binance(klines=rows).url)

    run = dags["backfill_klines"].test(run_conf={"lookback_days": 100_000})

    assert run.state == "success"
    assert _count(engine) == 600


def test_data_quality_passes_on_good_data_and_fails_naming_the_series(dags, engine):
    rows = sample_rows(200)
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1m", int(r[6]) + 1) for r in rows), source="replay")

    good = dags["data_quality"].test()
    with engine.begin() as c:
        c.exec_driver_sql("UPDATE market.candles SET high = low - 1 WHERE open_time = (SELECT min(open_time) FROM market.candles)")
    bad = dags["data_quality"].test()

    assert good.state == "success"
    assert bad.state == "failed"
    with engine.connect() as c:
        failed = c.execute(sa.text("SELECT check_name, symbol, interval FROM etl.quality_checks WHERE NOT passed")).fetchall()
    assert [tuple(f) for f in failed] == [("ohlc", "BTCUSDT", "1m")]


def test_data_quality_stays_green_after_a_one_off_import_and_fails_when_a_stream_stops(dags, engine, monkeypatch):
    monkeypatch.delenv("STREAMING_SYMBOLS", raising=False)
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1h", int(r[6]) + 1) for r in sample_rows(200, "BTCUSDT-1h.csv")), source="file")
    with engine.begin() as c:  # imported hours ago: static history, not a stream that stopped
        c.exec_driver_sql("UPDATE market.candles SET ingested_at = now() - interval '3 hours'")

    after_import = dags["data_quality"].test()
    with engine.begin() as c:  # a live 1m stream that delivered until 30 minutes ago, then stopped
        c.execute(sa.text("""INSERT INTO market.candles (symbol, interval, open_time, close_time, open, high, low, close, volume,
                             is_closed, event_time, source, ingested_at)
                             SELECT 'BTCUSDT', '1m', t, t + interval '59.999 seconds', 1, 1, 1, 1, 1, true, t + interval '1 minute',
                                    'binance', t + interval '61 seconds'
                             FROM generate_series(date_trunc('minute', now()) - interval '60 minutes',
                                                  date_trunc('minute', now()) - interval '31 minutes', interval '1 minute') t"""))
    stopped = dags["data_quality"].test()

    assert after_import.state == "success"
    assert stopped.state == "failed"
    with engine.connect() as c:
        failed = c.execute(sa.text("SELECT check_name, symbol, interval FROM etl.quality_checks WHERE NOT passed")).fetchall()
    assert [tuple(f) for f in failed] == [("staleness", "BTCUSDT", "1m")]


def test_a_bad_trigger_form_fails_the_backfill_naming_the_param_and_loads_nothing(dags, engine, tmp_path, capfd):
    run = dags["import_kline_files"].test(run_conf={"files": str(tmp_path / "BTCUSDT-1m-*.zip")})

    assert run.state == "failed"
    logged = "".join(capfd.readouterr())  # the task log goes to the console under dag.test()
    assert "AirflowFailException: import_kline_files params: files:" in logged and "matches no file" in logged
    assert _count(engine) == 0
