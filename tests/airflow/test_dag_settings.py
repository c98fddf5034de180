"""Every DAG-side setting with a bad value: the DAG files still import (no traceback in the DAG list), and what the
tasks call fails with ONE line naming the setting; a database that cannot work is one line too (missing, refused,
unmigrated: fatal; unreachable: retryable)."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa

from devstack.embedded import free_port
from klinepipe.errors import KlinepipeConfigError, KlinepipeRetryableError
from tests.conftest import ROOT, _fresh_database
from tests.outage_drills import Lines

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

# (environment, the function a task calls, the setting its one line must name)
BAD = [
    ({"DATABASE_URL": "not a url"}, "database_url", "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://user@host:notaport/db"}, "database_url", "DATABASE_URL"),
    ({"DATABASE_URL": "mysql://user@host/db"}, "database_url", "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://user@host:5432"}, "database_url", "DATABASE_URL"),
    ({"DATABASE_URL": ""}, "database_url", "DATABASE_URL"),
    ({"AIRFLOW_CONN_KLINEPIPE_DB": "{not json"}, "database_url", "klinepipe_db"),
    ({"KAFKA_BOOTSTRAP_SERVERS": ""}, "kafka_config", "KAFKA_BOOTSTRAP_SERVERS"),
    ({"KAFKA_BOOTSTRAP_SERVERS": "localhost"}, "kafka_config", "KAFKA_BOOTSTRAP_SERVERS"),
    ({"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092;kafka2:9092"}, "kafka_config", "KAFKA_BOOTSTRAP_SERVERS"),
    ({"AIRFLOW_CONN_KLINEPIPE_KAFKA": json.dumps({"conn_type": "kafka", "extra": {"acks": "all"}})}, "kafka_config",
     "klinepipe_kafka"),
    ({"AIRFLOW_CONN_KLINEPIPE_KAFKA": "{not json"}, "kafka_config", "klinepipe_kafka"),
    ({"KAFKA_TOPIC": "klines with spaces"}, "klines_topic", "KAFKA_TOPIC"),
    ({"KAFKA_TOPIC": ""}, "klines_topic", "KAFKA_TOPIC"),
    ({"KAFKA_DLQ_TOPIC": "dlq/klines"}, "dead_letter_topic", "KAFKA_DLQ_TOPIC"),
    ({"BINANCE_REST_URL": "api.binance.com"}, "binance_client", "BINANCE_REST_URL"),
    ({"KLINEPIPE_INGEST_SCHEDULE": "hourly"}, "check_schedule_settings", "KLINEPIPE_INGEST_SCHEDULE"),
    ({"KLINEPIPE_TRIGGER_POLL_S": "often"}, "check_schedule_settings", "KLINEPIPE_TRIGGER_POLL_S"),
    ({"KLINEPIPE_TRIGGER_POLL_S": "0"}, "check_schedule_settings", "KLINEPIPE_TRIGGER_POLL_S"),
    ({"KAFKA_TOPIC": "bad topic"}, "check_schedule_settings", "KAFKA_TOPIC"),
]
SETTINGS = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC", "KAFKA_DLQ_TOPIC", "BINANCE_REST_URL",
            "KLINEPIPE_INGEST_SCHEDULE", "KLINEPIPE_TRIGGER_POLL_S", "AIRFLOW_CONN_KLINEPIPE_DB", "AIRFLOW_CONN_KLINEPIPE_KAFKA")


@pytest.fixture
def clean_env(airflow_env, monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1:5432/db")
    return monkeypatch


@pytest.mark.parametrize("env,call,setting", BAD, ids=[f"{next(iter(e))}={next(iter(e.values()))}"[:60] for e, _, _ in BAD])
def test_a_bad_dag_setting_fails_the_task_with_one_line_naming_it(clean_env, env, call, setting):
    for name, value in env.items():
        clean_env.setenv(name, value)
    from klinepipe import airflow_conn

    with pytest.raises(KlinepipeConfigError) as err:
        getattr(airflow_conn, call)()

    assert setting in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("bad,named", [
    ({e: v for env, _, _ in BAD for e, v in env.items()}, ["KLINEPIPE_INGEST_SCHEDULE"]),  # every one bad at once
    ({"KLINEPIPE_TRIGGER_POLL_S": "often", "KAFKA_TOPIC": "bad topic"}, ["KLINEPIPE_TRIGGER_POLL_S", "KAFKA_TOPIC"]),
], ids=["all-bad", "watcher-settings-bad"])
def test_the_dag_files_import_whatever_the_settings_and_say_which_is_wrong(clean_env, bad, named):
    for name, value in bad.items():
        clean_env.setenv(name, value)
    from airflow.dag_processing.dagbag import DagBag

    seen = Lines()
    logging.getLogger("klinepipe.assets").addHandler(seen)
    try:
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    finally:
        logging.getLogger("klinepipe.assets").removeHandler(seen)

    assert bag.import_errors == {}
    assert {"ingest_klines", "compute_features", "backfill_klines", "data_quality"} <= set(bag.dag_ids)
    for name in named:
        assert any(name in line and "\n" not in line for line in seen.lines), seen.lines


def test_a_database_that_cannot_work_is_one_line(clean_env, pg_admin_url):
    from klinepipe.airflow_conn import database_engine

    admin = sa.engine.make_url(pg_admin_url)
    cases = {
        "refused": (f"postgresql://u@127.0.0.1:{free_port()}/db", KlinepipeRetryableError, "unreachable"),
        "missing database": (admin.set(database="kp_no_such_db").render_as_string(hide_password=False), KlinepipeConfigError,
                             "does not exist"),
        "unmigrated": (_fresh_database(pg_admin_url, "kp_unmigrated"), KlinepipeConfigError, "klinepipe.migrate"),
    }
    for url, error, says in cases.values():
        clean_env.setenv("DATABASE_URL", url)
        with pytest.raises(error) as err:
            database_engine()
        assert says in str(err.value) and "DATABASE_URL" in str(err.value) and "\n" not in str(err.value)


def test_a_run_of_ingest_with_a_bad_schedule_setting_fails_its_plan_task_with_that_line(clean_env, capfd):
    clean_env.setenv("KLINEPIPE_INGEST_SCHEDULE", "hourly")
    from airflow.dag_processing.dagbag import DagBag

    run = DagBag(dag_folder=str(ROOT / "dags")).dags["ingest_klines"].test()

    assert run.state == "failed"
    logged = "".join(capfd.readouterr())  # the task log goes to the console under dag.test()
    assert "AirflowFailException: KLINEPIPE_INGEST_SCHEDULE: expected cron, event or both, got 'hourly'" in logged
