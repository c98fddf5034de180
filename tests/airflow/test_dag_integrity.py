"""DAG integrity and policy (Astro-template style): imports, tags, retries >= 2, catchup off, a description for
the DAG list, trigger forms whose empty optional fields are valid."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow
DAG_FILES = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "dags").glob("*.py"))  # a new file: a new case
EXPECTED = {"ingest_klines", "compute_features", "backfill_klines", "import_kline_files", "data_quality", "backtest_strategy",
            "optimize_strategy"}
REQUIRED_PARAMS = {("import_kline_files", "files")}  # a form field the user must fill: no default can mean anything


@pytest.fixture(scope="module")
def dagbag(airflow_env):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=airflow_env["AIRFLOW__CORE__DAGS_FOLDER"])


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert EXPECTED <= set(dagbag.dags)


def _dags_of(dagbag, file: str) -> list:
    """Every DAG the bag found in ``dags/<file>`` (at least one: a DAG file without a DAG fails here)."""
    dags = sorted((d for d in dagbag.dags.values() if Path(d.fileloc).name == file), key=lambda d: d.dag_id)
    assert dags, f"dags/{file} defines no DAG"
    return dags


def test_every_dag_in_the_bag_is_in_a_dag_file(dagbag):
    assert {Path(d.fileloc).name for d in dagbag.dags.values()} <= set(DAG_FILES)


@pytest.mark.parametrize("file", DAG_FILES)
def test_dag_policy(dagbag, file):
    for dag in _dags_of(dagbag, file):
        dag_id = dag.dag_id

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


@pytest.mark.parametrize("file", DAG_FILES)
def test_trigger_form_opens_submittable_and_optional_fields_may_stay_empty(dagbag, file):
    import jsonschema

    for dag in _dags_of(dagbag, file):
        dag_id = dag.dag_id
        for name, param in dag.params.items():
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


@pytest.mark.parametrize("dag_id", ["backtest_strategy", "optimize_strategy"])
def test_the_backtest_forms_suggest_the_bundled_strategies_and_accept_a_users_own(dagbag, dag_id):
    import jsonschema

    from trader.strategies import BUNDLED

    schema = dagbag.dags[dag_id].params.get_param("strategy").schema
    assert sorted(schema["examples"]) == sorted(BUNDLED) and "enum" not in schema
    jsonschema.validate("my_strategy", schema)  # a name from TRADER_STRATEGY_DIR: checked by the task, by name


def test_the_optimisation_form_offers_exactly_the_objectives_and_samplers(dagbag):
    from trader.backtest.optimize.evaluate import OBJECTIVES
    from trader.backtest.optimize.study import SAMPLERS

    params = dagbag.dags["optimize_strategy"].params
    assert params.get_param("objective").schema["enum"] == list(OBJECTIVES)
    assert params.get_param("sampler").schema["enum"] == list(SAMPLERS)
