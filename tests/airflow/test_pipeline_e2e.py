"""End to end: real candles replayed by the streaming sidecar -> Kafka -> ingest DAG -> features DAG -> trader.

Every hop is the real component: the ``python -m streaming replay`` process, the Kafka-API broker,
both DAGs run with ``dag.test()`` on a PostgreSQL Airflow metadata database, and the trader's loop.
"""

import os
import subprocess
import sys
from decimal import Decimal

import pytest
import sqlalchemy as sa

from streaming.config import KafkaSettings
from streaming.kafka_sink import build_sink
from tests.conftest import ROOT, airflow_connections
from tests.helpers import expected_sma_cross_orders, sample_rows, write_csv
from tests.traders import make_trader

pytestmark = [pytest.mark.airflow, pytest.mark.integration]
N = 720


def _count(engine, sql):
    with engine.connect() as c:
        return c.execute(sa.text(sql)).scalar()


def test_replayed_candles_become_features_and_exactly_the_crossover_orders(
        airflow_env, engine, database_url, kafka_bootstrap, topic, tmp_path, monkeypatch):
    rows = sample_rows(N)
    csv_path = write_csv(tmp_path / "BTCUSDT-1m.csv", rows)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": f"{topic}.dlq"}
    replay = subprocess.run([sys.executable, "-m", "streaming", "replay", "--file", str(csv_path), "--speed", "max"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    assert f"published={N} acked={N} dead_lettered=0" in replay.stdout

    sink = build_sink(KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=topic, dlq_topic=f"{topic}.dlq"))
    sink.dead_letter(b'{"e":"kline"', "not JSON: truncated", "binance", 0)  # as the sidecar rejects a frame
    sink.close()
    for key, value in {**airflow_connections(database_url, kafka_bootstrap), "KAFKA_TOPIC": topic,
                       "KAFKA_DLQ_TOPIC": f"{topic}.dlq"}.items():
        monkeypatch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    ingest_run = bag.dags["ingest_klines"].test()
    features_run = bag.dags["compute_features"].test()
    rerun = bag.dags["ingest_klines"].test()  # nothing new: must change nothing

    assert ingest_run.state == "success" and features_run.state == "success" and rerun.state == "success"
    assert _count(engine, "SELECT count(*) FROM market.candles") == N
    assert _count(engine, "SELECT count(*) FROM (SELECT DISTINCT symbol, interval, open_time FROM market.candles) d") == N
    assert _count(engine, "SELECT count(*) FROM market.features") == N
    assert _count(engine, f"SELECT sum(next_offset) FROM etl.kafka_offsets WHERE topic = '{topic}'") == N
    assert _count(engine, f"SELECT error FROM etl.dead_letters WHERE topic = '{topic}.dlq'") == "not JSON: truncated"
    assert _count(engine, "SELECT count(*) FROM etl.dead_letters") == 1  # loaded once, though ingest ran twice

    make_trader(database_url).step()

    expected = expected_sma_cross_orders([Decimal(r[4]) for r in rows])
    with engine.connect() as c:
        got = c.execute(sa.text("SELECT signal_open_time, side FROM trading.orders ORDER BY signal_open_time")).fetchall()
    assert len(expected) >= 4
    assert [(int(t.timestamp() * 1000), side) for t, side in got] == [(int(rows[i][0]), s) for i, s in expected]
