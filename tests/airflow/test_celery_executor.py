"""Airflow on the CeleryExecutor with two Celery workers: the exactly-once drill's 100,000 messages (duplicates,
out-of-order updates, 1 % malformed) loaded by ``ingest_klines`` mapped over two partition groups (``tasks=2``),
each mapped ``load_batch`` run by whichever worker is free, until a run finds nothing new. The drill's assertions
hold across workers, and Celery's own record (its result backend, ``result_extended``) shows that both workers
loaded candles.

Broker: Redis when ``REDIS_URL`` is set; otherwise the embedded PostgreSQL through kombu's SQLAlchemy transport
(``sqla+postgresql://``). Results: ``db+postgresql://`` in the same database. The api-server, scheduler,
dag-processor and both workers are real ``airflow`` processes (no triggerer: ``KLINEPIPE_INGEST_SCHEDULE=event``
and no watcher, so the only runs are the test's)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import kombu
import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, _fresh_database, airflow_connections
from tests.exactly_once_drill import TOTAL, assert_loaded_exactly_once, drill_messages
from tests.helpers import produce
from tests.ui.airflow_stack import AirflowStack, start_airflow

pytestmark = [pytest.mark.airflow, pytest.mark.integration]
WORKERS = ("loader-1@klinepipe", "loader-2@klinepipe")
MAX_RUNS = 8  # the drill needs 3 or 4 (two with data per group at most, then one that finds nothing)


def celery_settings(*, broker_url: str, result_backend: str, queue: str) -> dict[str, str]:
    """The executor's settings, as README "Scaling out" documents them; ``result_extended`` makes the result backend
    record which worker ran each task. Every component (scheduler, api-server, dag-processor, workers) gets them."""
    return {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",  # 2 workers x 1 = the 2 cores
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": '{"result_extended": true}',
            # a queue of this test's own: a Redis shared with other runs never hands its tasks to their workers
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2"}


def _broker_and_backend(pg_admin_url: str) -> tuple[str, str]:
    celery_db = sa.engine.make_url(_fresh_database(pg_admin_url, "celery")).set(drivername="postgresql+psycopg2")
    url = celery_db.render_as_string(hide_password=False)
    return os.environ.get("REDIS_URL") or f"sqla+{url}", f"db+{url}"


def _prepare_broker(broker_url: str, queue: str) -> None:
    """One message through the broker before any worker starts. kombu's SQLAlchemy transport creates its tables on
    first use, without the retry Celery's result backend has: two workers starting at once on a fresh database both
    ran that DDL, and one exited (seen in CI). A deployment on that transport has the same race; README "Scaling
    out" says to start the first worker alone once, or to use Redis."""
    with kombu.Connection(broker_url) as conn:
        for name in (f"{queue}-prepare", queue):  # the tasks' queue too: declared once here, not by three at once
            probe = conn.SimpleQueue(name)
            probe.put("ready")
            probe.get(timeout=30).ack()
            probe.close()


@pytest.fixture
def celery_airflow(airflow_env, pg_admin_url, database_url, kafka_bootstrap, topic, tmp_path):
    """api-server, scheduler, dag-processor and two Celery workers on the session's metadata database."""
    broker, backend = _broker_and_backend(pg_admin_url)
    celery = celery_settings(broker_url=broker, result_backend=backend, queue=f"klinepipe-{uuid.uuid4().hex[:8]}")
    env = {**airflow_env, **celery, **airflow_connections(database_url, kafka_bootstrap),
           "KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": f"{topic}.dlq", "KLINEPIPE_INGEST_SCHEDULE": "event"}
    # A task's queue is fixed when its DAG is serialized, and the metadata database is shared with other tests'
    # dag-processors and dag.test() runs, which serialize it with queue "default" (seen in CI: the tasks waited
    # there, unread). On this test's own broker database nothing else reads "default", so the workers read it too;
    # on a shared Redis only this test's queue is read.
    queues = celery["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] + ("" if os.environ.get("REDIS_URL") else ",default")
    workers = {name.split("@")[0]: ["celery", "worker", "-H", name, "-c", "1", "-q", queues,
                                    "--skip-serve-logs", "--without-mingle", "--without-gossip"] for name in WORKERS}
    _prepare_broker(broker, celery["AIRFLOW__OPERATORS__DEFAULT_QUEUE"])
    stack = start_airflow(env, tmp_path / "logs", overrides=celery, extra=workers)
    try:
        for name in WORKERS:  # both must take tasks before the first is queued, or one could run them all
            _wait_for_line(stack, name.split("@")[0], f"{name} ready.")
        stack.wait_for_dags({"ingest_klines"})
        _wait_until_event_scheduled(stack)
        stack.api("/dags/ingest_klines", "PATCH", {"is_paused": False})
        yield stack, backend.removeprefix("db+"), airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    finally:
        stack.stop()


def test_two_celery_workers_load_the_drill_exactly_once(celery_airflow, engine, kafka_bootstrap, topic):
    stack, results_url, meta_url = celery_airflow
    msgs = drill_messages(random.Random(20261125))
    produce(kafka_bootstrap, topic, [m[1] for m in msgs], keys=[m[0] for m in msgs])

    loaded_by: Counter = Counter()  # candles changed per Celery worker
    for i in range(MAX_RUNS):
        run_id = f"celery-drill-{uuid.uuid4().hex[:8]}-{i}"  # the metadata database outlives this test
        stack.api("/dags/ingest_klines/dagRuns", "POST", {"dag_run_id": run_id, "logical_date": None,
                                                           "conf": {"tasks": 2, "max_messages": 30_000}})
        assert _wait_for_run(stack, run_id, results_url) == "success", _what_celery_saw(stack, results_url)
        loads = _load_tasks(meta_url, results_url, run_id)
        assert len(loads) == 2, loads  # two mapped load tasks: one per partition group
        for worker, state, changed in loads:
            loaded_by[worker] += changed
        if all(state == "skipped" for _, state, _ in loads):  # nothing new anywhere: the topic is loaded
            break
    else:
        pytest.fail(f"still loading after {MAX_RUNS} runs: {loaded_by}")

    assert_loaded_exactly_once(engine, topic, msgs)
    print(f"candles changed per Celery worker: {dict(loaded_by)}")
    assert set(loaded_by) <= set(WORKERS)
    assert all(loaded_by[w] > 0 for w in WORKERS), loaded_by  # both workers loaded candles


def _what_celery_saw(stack: AirflowStack, broker_db: str) -> str:
    """For a run that did not end: the scheduler's and workers' last lines and the broker's queues (kombu's tables:
    messages per queue, taken or not), so that a stuck run says where its tasks are."""
    engine = sa.create_engine(broker_db)
    try:
        with engine.connect() as c:
            queues = c.execute(sa.text("SELECT q.name, count(m.id), count(m.id) FILTER (WHERE m.visible) FROM kombu_queue q"
                                       " LEFT JOIN kombu_message m ON m.queue_id = q.id GROUP BY q.name")).fetchall()
    except sa.exc.SQLAlchemyError as exc:  # Redis, or no tables
        queues = [f"(not read: {type(exc).__name__})"]
    finally:
        engine.dispose()
    return "\n".join([f"broker queues (name, messages, not taken): {queues}",
                       *(f"--- {name}:\n{stack.tail(name)}" for name in ("scheduler", *(w.split("@")[0] for w in WORKERS)))])


def _load_tasks(meta_url: str, results_url: str, run_id: str) -> list[tuple[str | None, str, int]]:
    """(Celery worker, state, candles changed) of each mapped ``load_batch`` of ``run_id``: the task instance's
    Celery task id joined to the result backend's record of the worker that ran it, and the task's XCom result."""
    meta, results = sa.create_engine(meta_url), sa.create_engine(results_url)
    try:
        with meta.connect() as c:
            tis = c.execute(sa.text("SELECT map_index, state, external_executor_id FROM task_instance WHERE dag_id = 'ingest_klines'"
                                    " AND run_id = :r AND task_id = 'load_batch'"), {"r": run_id}).fetchall()
            xcom = dict(c.execute(sa.text("SELECT map_index, value FROM xcom WHERE dag_id = 'ingest_klines' AND run_id = :r"
                                          " AND task_id = 'load_batch' AND key = 'return_value'"), {"r": run_id}).fetchall())
        with results.connect() as c:
            worker = dict(c.execute(sa.text("SELECT task_id, worker FROM celery_taskmeta")).fetchall())
    finally:
        meta.dispose()
        results.dispose()
    return [(worker.get(t.external_executor_id), t.state, int((xcom.get(t.map_index) or {}).get("changed", 0))) for t in tis]


def _wait_for_run(stack: AirflowStack, run_id: str, broker_db: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = stack.api(f"/dags/ingest_klines/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            return state
        stack.check_alive()
        assert time.monotonic() < deadline, f"{run_id} still {state}: {_what_celery_saw(stack, broker_db)}"
        time.sleep(1)


def _wait_until_event_scheduled(stack: AirflowStack, timeout: float = 120) -> None:
    """Until the dag-processor has re-serialized ``ingest_klines`` with this test's ``KLINEPIPE_INGEST_SCHEDULE``
    (a ``dag.test()`` of another test may have left its every-minute schedule in the shared metadata database):
    unpaused with that one, the scheduler would start runs of its own."""
    deadline = time.monotonic() + timeout
    while (summary := stack.api("/dags/ingest_klines")["timetable_summary"]) != "Asset":
        assert time.monotonic() < deadline, f"ingest_klines still scheduled {summary!r}: {stack.tail('dag-processor')}"
        time.sleep(1)


def _wait_for_line(stack: AirflowStack, name: str, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in stack.tail(name, 100_000):
        stack.check_alive()
        assert time.monotonic() < deadline, f"{name}: no '{text}': {stack.tail(name)}"
        time.sleep(0.5)
