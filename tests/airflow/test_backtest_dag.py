"""The backtest DAG: trigger params -> stored candles -> the trader's backtest -> a report directory per run."""

import json

import pytest

from tests.conftest import ROOT, airflow_connections
from tests.helpers import sample_rows, seed_candles, write_csv
from trader.backtest.engine import FillModel
from trader.backtest.service import BacktestRequest, execute

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def test_a_triggered_backtest_writes_the_report_of_the_stored_candles(airflow_env, engine, database_url, tmp_path, monkeypatch):
    rows = sample_rows(1200)
    seed_candles(engine, rows)
    reports = tmp_path / "reports"
    monkeypatch.setenv("AIRFLOW_CONN_KLINEPIPE_DB", airflow_connections(database_url, "unused:9092")["AIRFLOW_CONN_KLINEPIPE_DB"])
    monkeypatch.setenv("KLINEPIPE_REPORTS_DIR", str(reports))
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["backtest_strategy"]
    run = dag.test(run_conf={"symbol": "BTCUSDT", "interval": "1m", "strategy": "sma_cross", "params": {"fast": 10, "slow": 50},
                             "fee_bps": 5.0, "start": "", "end": ""})

    assert run.state == "success"
    (out,) = list(reports.iterdir())
    assert {p.name for p in out.iterdir()} == {"trades.csv", "equity.csv", "summary.json", "report.html", "equity.png"}
    summary = json.loads((out / "summary.json").read_text())
    expected = execute(BacktestRequest(out_dir=tmp_path / "csv", csv=write_csv(tmp_path / "BTCUSDT-1m.csv", rows),
                                       params={"fast": 10, "slow": 50}, html=False, png=False,
                                       model=FillModel(fee_bps=5.0)))
    assert summary["params"] == {"fast": 10, "slow": 50} and summary["fill_model"]["fee_bps"] == 5.0
    assert summary["bars"] == 1200 and summary["trades"] == expected["summary"]["trades"] > 0
    assert summary["final_equity"] == expected["summary"]["final_equity"]


def test_a_user_strategy_from_trader_strategy_dir_backtests_through_the_dag(airflow_env, engine, database_url, tmp_path,
                                                                             monkeypatch):
    from trader.backtest.user_strategies import load_user_strategies
    from trader.strategy_template import write_template

    rows = sample_rows(1200)
    seed_candles(engine, rows)
    write_template(tmp_path / "strategies", "my_dag_cross")
    reports = tmp_path / "reports"
    monkeypatch.setenv("TRADER_STRATEGY_DIR", str(tmp_path / "strategies"))
    monkeypatch.setenv("AIRFLOW_CONN_KLINEPIPE_DB", airflow_connections(database_url, "unused:9092")["AIRFLOW_CONN_KLINEPIPE_DB"])
    monkeypatch.setenv("KLINEPIPE_REPORTS_DIR", str(reports))
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["backtest_strategy"]
    run = dag.test(run_conf={"symbol": "BTCUSDT", "interval": "1m", "strategy": "my_dag_cross",
                             "params": {"fast": 8, "slow": 21}, "fee_bps": 5.0, "start": "", "end": ""})

    assert run.state == "success"
    (out,) = list(reports.iterdir())
    summary = json.loads((out / "summary.json").read_text())
    assert load_user_strategies() == ["my_dag_cross"]  # the CLI's loader: the same strategy, the same trades
    expected = execute(BacktestRequest(out_dir=tmp_path / "csv", csv=write_csv(tmp_path / "BTCUSDT-1m.csv", rows),
                                       strategy="my_dag_cross", params={"fast": 8, "slow": 21}, html=False, png=False,
                                       model=FillModel(fee_bps=5.0)))
    assert summary["strategy"] == "my_dag_cross" and summary["params"]["fast"] == 8
    assert summary["trades"] == expected["summary"]["trades"] > 0
    assert summary["final_equity"] == expected["summary"]["final_equity"]
