"""The optimisation DAG: trigger params -> studies in PostgreSQL -> trials as mapped tasks -> one report per run.

(Resuming a study is the same code path as in tests/integration/test_optimize_studies.py: one dag.test() here.)"""

import json

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, airflow_connections
from tests.helpers import sample_rows, seed_candles

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def test_a_triggered_optimisation_runs_its_trials_as_mapped_tasks_on_the_studies_in_postgresql(
        airflow_env, engine, database_url, tmp_path, monkeypatch):
    seed_candles(engine, sample_rows(2400))
    reports = tmp_path / "reports"
    monkeypatch.setenv("AIRFLOW_CONN_KLINEPIPE_DB", airflow_connections(database_url, "unused:9092")["AIRFLOW_CONN_KLINEPIPE_DB"])
    monkeypatch.setenv("KLINEPIPE_REPORTS_DIR", str(reports))
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["optimize_strategy"]
    conf = {"symbol": "BTCUSDT", "interval": "1m", "strategy": "sma_cross", "study": "dag-study",
            "space": {"fast": {"int": [5, 15]}, "slow": {"int": [20, 60]}}, "constraints": ["fast < slow"],
            "objective": "profit", "min_trades": 1, "trials": 3, "folds": 2, "tasks": 2, "start": "", "end": ""}

    run = dag.test(run_conf=conf)

    assert run.state == "success"
    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "run_trials"]
    assert sorted(ti.map_index for ti in mapped) == [0, 1, 2, 3]  # 2 folds x 2 tasks
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.text("SELECT s.study_name, count(*) FROM optuna.studies s JOIN optuna.trials t"
                                           " USING (study_id) WHERE s.study_name LIKE 'dag-study/%' GROUP BY 1")).all())
    assert counts == {"dag-study/fold1": 3, "dag-study/fold2": 3}  # the tasks of a fold shared its 3 trials
    (b,) = reports.iterdir()
    summary = json.loads((b / "summary.json").read_text())
    assert {p.name for p in b.iterdir()} >= {"report.html", "trials.csv", "folds.csv", "history-dag-study-fold1.png"}
    assert summary["study"] == "dag-study" and [f["trials"] for f in summary["folds"]] == [3, 3]
    assert summary["best_params"]["fast"] < summary["best_params"]["slow"]


def test_the_optimisation_dag_tunes_a_user_strategy_from_trader_strategy_dir(airflow_env, engine, database_url, tmp_path,
                                                                              monkeypatch):
    from trader.strategy_template import write_template

    seed_candles(engine, sample_rows(1500))
    write_template(tmp_path / "strategies", "my_dag_tuned")
    monkeypatch.setenv("TRADER_STRATEGY_DIR", str(tmp_path / "strategies"))
    monkeypatch.setenv("AIRFLOW_CONN_KLINEPIPE_DB", airflow_connections(database_url, "unused:9092")["AIRFLOW_CONN_KLINEPIPE_DB"])
    monkeypatch.setenv("KLINEPIPE_REPORTS_DIR", str(tmp_path / "reports"))
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["optimize_strategy"]
    conf = {"symbol": "BTCUSDT", "interval": "1m", "strategy": "my_dag_tuned", "study": "dag-user-study",
            "space": {"fast": {"int": [5, 12]}, "slow": {"int": [20, 40]}}, "params": {"min_gap_bps": 0.0},
            "objective": "profit", "min_trades": 0, "trials": 2, "folds": 0, "tasks": 1, "start": "", "end": ""}

    run = dag.test(run_conf=conf)

    assert run.state == "success"
    (b,) = (tmp_path / "reports").iterdir()
    summary = json.loads((b / "summary.json").read_text())
    assert summary["strategy"] == "my_dag_tuned" and summary["folds"][0]["trials"] == 2
