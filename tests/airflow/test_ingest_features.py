"""Issue 17: the ingest run computes the features of what it loaded and sends the NOTIFY itself (no second DAG run
on the event path); compute_features afterwards finds nothing to do. ``dag.test()`` on real PostgreSQL and broker."""

import json

import psycopg2
import pytest
import sqlalchemy as sa

from klinepipe import FEATURES_CHANNEL
from klinepipe.feature_store import compute_pending_features, load_features
from tests.conftest import ROOT, airflow_connections
from tests.helpers import closed_events, dsn_of, produce, sample_rows

pytestmark = [pytest.mark.airflow, pytest.mark.integration]
MARK = "end-of-test-notifications"


@pytest.fixture
def dags(airflow_env, database_url, kafka_bootstrap, topic, monkeypatch):
    for key, value in {**airflow_connections(database_url, kafka_bootstrap), "KAFKA_TOPIC": topic,
                       "KAFKA_DLQ_TOPIC": f"{topic}.dlq", "KLINEPIPE_INGEST_SCHEDULE": "cron"}.items():
        monkeypatch.setenv(key, value)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).dags


@pytest.fixture
def listener(database_url):
    conn = psycopg2.connect(dsn_of(database_url))
    conn.autocommit = True
    conn.cursor().execute(f"LISTEN {FEATURES_CHANNEL}")
    yield conn
    conn.close()


def _notified(listener, database_url) -> list[dict]:
    """The features notifications committed so far: a marker NOTIFY is sent last and read up to (PostgreSQL
    delivers notifications in commit order), so none that was sent before it can be missing."""
    import select

    with psycopg2.connect(dsn_of(database_url)) as c, c.cursor() as cur:
        cur.execute("SELECT pg_notify(%s, %s)", (FEATURES_CHANNEL, MARK))
    got = []
    while True:
        listener.poll()
        while listener.notifies:
            payload = listener.notifies.pop(0).payload
            if payload == MARK:
                return got
            got.append(json.loads(payload))
        select.select([listener], [], [])


def _snapshot(engine) -> dict:
    with engine.connect() as c:
        return dict(c.execute(sa.text("SELECT open_time, computed_at FROM market.features")).fetchall())


def test_the_ingest_run_writes_and_notifies_the_features_and_compute_features_then_does_nothing(
        dags, engine, database_url, kafka_bootstrap, topic, listener):
    rows = sample_rows(300)
    key = b"BTCUSDT:1m"
    produce(kafka_bootstrap, topic, closed_events(rows[:200]), keys=[key] * 200)

    first = dags["ingest_klines"].test()  # no feature set recorded yet: the first scan is compute_features' job
    assert first.state == "success" and _snapshot(engine) == {}
    assert dags["compute_features"].test().state == "success"
    assert len(_snapshot(engine)) == 200
    _notified(listener, database_url)  # those of the first scan

    produce(kafka_bootstrap, topic, closed_events(rows[200:]), keys=[key] * 100)
    ingest = dags["ingest_klines"].test()

    assert ingest.state == "success"
    stored = load_features(engine, "BTCUSDT", "1m")
    assert len(stored) == 300 and stored["open_time"].is_unique  # written by the ingest run itself
    notes = _notified(listener, database_url)
    assert [(n["symbol"], n["interval"], n["rows"]) for n in notes] == [("BTCUSDT", "1m", 100)]
    assert notes[0]["open_time"] == stored["open_time"].iloc[-1].isoformat()
    (load,) = [ti for ti in ingest.get_task_instances() if ti.task_id == "load_batch"]
    assert load.state == "success"

    before = _snapshot(engine)
    features = dags["compute_features"].test()  # what the ingest's market.candles update schedules

    assert features.state == "success"
    assert _snapshot(engine) == before  # not one row rewritten
    assert _notified(listener, database_url) == []  # and no notification: the trader is not woken twice
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM etl.features_pending")).scalar() == 0
    assert compute_pending_features(engine, rescan=True) == []  # nothing missing or outdated either


def test_features_the_ingest_run_leaves_are_done_by_compute_features(dags, engine, database_url, kafka_bootstrap,
                                                                     topic, listener, monkeypatch):
    """While another features run holds etl.feature_state, the loader does not wait for it: the candles commit,
    their features stay queued, and the compute_features run its market.candles update schedules writes them."""
    rows = sample_rows(120)
    key = b"BTCUSDT:1m"
    assert compute_pending_features(engine) == []  # the feature set is recorded: the loader's step is due
    produce(kafka_bootstrap, topic, closed_events(rows), keys=[key] * len(rows))
    holder = psycopg2.connect(dsn_of(database_url))
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT 1 FROM etl.feature_state FOR UPDATE")  # a long features run
        import klinepipe.feature_store as fs

        original = fs.compute_queued_features  # the loader gives up on the lock after 0.2 s, not 10 s
        monkeypatch.setattr(fs, "compute_queued_features", lambda engine: original(engine, lock_timeout_s=0.2))
        ingest = dags["ingest_klines"].test()
    finally:
        holder.rollback()
        holder.close()

    assert ingest.state == "success"
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM market.candles")).scalar() == 120
    assert _snapshot(engine) == {} and _notified(listener, database_url) == []
    assert dags["compute_features"].test().state == "success"
    assert len(_snapshot(engine)) == 120
    assert [(n["symbol"], n["rows"]) for n in _notified(listener, database_url)] == [("BTCUSDT", 120)]
