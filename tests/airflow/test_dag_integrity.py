"""DAG integrity and policy (Astro-template style): imports, tags, retries >= 2, catchup off."""

import pytest

pytestmark = pytest.mark.airflow
EXPECTED = {"ingest_klines", "compute_features", "backfill_klines", "data_quality", "backtest_strategy"}


@pytest.fixture(scope="module")
def dagbag(airflow_env):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=airflow_env["AIRFLOW__CORE__DAGS_FOLDER"])


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert EXPECTED <= set(dagbag.dags)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_policy(dagbag, dag_id):
    dag = dagbag.dags[dag_id]

    assert dag.tags and "klinepipe" in dag.tags
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.doc_md
    for task in dag.tasks:
        assert task.retries >= 2, f"{dag_id}.{task.task_id} retries={task.retries}"


def test_features_are_scheduled_on_the_asset_the_ingest_publishes(dagbag):
    ingest, features = dagbag.dags["ingest_klines"], dagbag.dags["compute_features"]

    outlets = {o.uri for t in ingest.tasks for o in t.outlets}

    assert outlets == {"x-klinepipe://postgres/market/candles"}
    assert [a.uri for a in features.timetable.asset_condition.objects] == sorted(outlets)
