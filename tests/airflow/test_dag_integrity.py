"""DAG integrity and policy (Astro-template style): imports, tags, retries >= 2, catchup off, a description for
the DAG list, trigger forms whose empty optional fields are valid."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow
EXPECTED = {"ingest_klines", "compute_features", "backfill_klines", "import_kline_files", "data_quality", "backtest_strategy"}
REQUIRED_PARAMS = {("import_kline_files", "files")}  # a form field the user must fill: no default can mean anything


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


def test_every_dag_file_has_a_dag_with_a_description_for_the_dag_list(dagbag, airflow_env):
    files = sorted(Path(airflow_env["AIRFLOW__CORE__DAGS_FOLDER"]).glob("*.py"))
    by_file = {Path(d.fileloc).name: d for d in dagbag.dags.values()}

    assert {f.name for f in files} <= set(by_file), "a file in dags/ without a DAG"
    for name, dag in by_file.items():
        assert dag.description and 20 <= len(dag.description) <= 160, f"{name}: {dag.description!r}"
        assert "\n" not in dag.description


def _ui_required(schema: dict) -> bool:
    """The trigger form's rule (Airflow 3 UI, flexibleForm): a field is required when its schema has a type
    that does not include "null"; an empty required field disables the Trigger button."""
    kind = schema.get("type")
    return bool(kind) and not (isinstance(kind, list) and "null" in kind)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_trigger_form_opens_submittable_and_optional_fields_may_stay_empty(dagbag, dag_id):
    import jsonschema

    for name, param in dagbag.dags[dag_id].params.items():
        value, schema = param.value, param.schema
        if (dag_id, name) in REQUIRED_PARAMS:
            assert _ui_required(schema) and value in ("", None)
            continue
        if value is None or value == "" or value == []:  # an empty field must be allowed to stay empty
            assert not _ui_required(schema), f"{dag_id}.{name}: empty by default but required by the form"
            jsonschema.validate(None, schema)
        else:
            jsonschema.validate(value, schema)
        assert param.description or schema.get("title") or schema.get("enum"), f"{dag_id}.{name}: no help text"


def test_the_backtest_form_offers_exactly_the_trader_strategies(dagbag):
    from trader.strategies import REGISTRY

    assert sorted(dagbag.dags["backtest_strategy"].params.get_param("strategy").schema["enum"]) == sorted(REGISTRY)
