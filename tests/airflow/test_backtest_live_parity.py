"""Backtest-live parity: a CSV replayed through the live path gives exactly the backtest's trades.

Live path: ``python -m streaming replay`` -> Kafka-API broker -> ``ingest_klines`` and ``compute_features``
with ``dag.test()`` -> the trader's loop with the paper broker. Backtest: the same CSV through
``trader.backtest``. The shared rule: an order is keyed by its decision candle and fills at the next
candle's open; a decision on the last candle has no next open yet, so it stays unfilled.
"""

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, airflow_connections
from tests.helpers import sample_rows, write_csv
from tests.traders import backtest_fills, make_trader, model_of
from trader.backtest.candles import read_kline_file
from trader.backtest.runner import run_backtest

pytestmark = [pytest.mark.airflow, pytest.mark.integration]
N = 720


def replay_through_the_pipeline(csv_path, database_url, kafka_bootstrap, topic, monkeypatch) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": f"{topic}.dlq"}
    replay = subprocess.run([sys.executable, "-m", "streaming", "replay", "--file", str(csv_path), "--speed", "max"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    for key, value in {**airflow_connections(database_url, kafka_bootstrap), "KAFKA_TOPIC": topic}.items():
        monkeypatch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.dags["ingest_klines"].test().state == "success"
    assert bag.dags["compute_features"].test().state == "success"


def live_orders(engine) -> list:
    with engine.connect() as c:
        return c.execute(sa.text(
            "SELECT (extract(epoch FROM o.signal_open_time) * 1000)::bigint AS decided, o.side, o.status,"
            " f.price, f.quantity, f.fee, (extract(epoch FROM f.filled_at) * 1000)::bigint AS filled"
            " FROM trading.orders o LEFT JOIN trading.fills f USING (client_order_id) ORDER BY o.signal_open_time")).fetchall()


def paper_balance(engine) -> float:
    with engine.connect() as c:
        return float(c.execute(sa.text("SELECT free FROM trading.balances WHERE mode = 'paper' AND asset = 'USDT'")).scalar())


def test_replayed_live_trades_are_exactly_the_backtest_trades(
        airflow_env, db, database_url, kafka_bootstrap, topic, tmp_path, monkeypatch):
    csv_path = write_csv(tmp_path / "BTCUSDT-1m.csv", sample_rows(N))
    replay_through_the_pipeline(csv_path, database_url, kafka_bootstrap, topic, monkeypatch)
    trader = make_trader(database_url)
    cash = paper_balance(db)

    trader.step()
    trader.step()  # a second pass fills whatever the first left waiting for a next candle, and orders nothing twice

    candles = read_kline_file(csv_path)
    result = run_backtest(candles, trader.sleeves[0].strategy, model_of(trader, cash))
    expected = backtest_fills(candles, result.fills)
    got = live_orders(db)
    filled = [o for o in got if o.status == "FILLED"]
    assert len(expected) >= 4
    assert [(o.decided, o.side, float(o.price), o.filled) for o in filled] == [e[:4] for e in expected]
    assert [float(o.quantity) for o in filled] == pytest.approx([e[4] for e in expected], rel=1e-12)
    assert sum(float(o.fee) for o in filled) == pytest.approx(float(result.fills.fee.sum()), rel=1e-9)
    last_open = int(candles["open_time"].iloc[-1])
    assert all(o.decided == last_open for o in got if o.status != "FILLED"), "only a last-candle decision may wait"
