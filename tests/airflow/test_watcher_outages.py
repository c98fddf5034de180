"""Drill: the triggerer's watcher (``PendingKlinesTrigger``) rides out the real embedded PostgreSQL stopped and the
real tansu broker killed, each for a drill's outage (``KLINEPIPE_DRILL_OUTAGE_S``: 20 s; the issue's drill is 60 s)
and started again at the same address: it never ends, logs each outage once and its recovery once, and fires as
soon as a closed kline waits after both came back."""

from __future__ import annotations

import asyncio
import logging

import pytest

from devstack.embedded import free_port, start_broker
from streaming.kafka_topics import ensure_topics
from tests.conftest import airflow_connections
from tests.helpers import closed_events, produce, sample_rows
from tests.outage_drills import OUTAGE_S, Lines, StoppablePostgres

pytestmark = [pytest.mark.airflow, pytest.mark.integration]
TOPIC = "klines-watcher-drill"


def test_the_watcher_rides_out_postgres_and_broker_outages(airflow_env, tmp_path, monkeypatch):
    pg = StoppablePostgres(tmp_path / "pg")
    port = free_port()
    brokers = [start_broker(port, log_path=tmp_path / "tansu1.log")]
    seen = Lines()
    logger = logging.getLogger("klinepipe.triggers")
    logger.addHandler(seen)
    try:
        database = pg.migrated_database("watcher_drill")
        ensure_topics({"bootstrap.servers": brokers[0].bootstrap_servers}, {TOPIC: 6})
        for key, value in airflow_connections(database, brokers[0].bootstrap_servers).items():
            monkeypatch.setenv(key, value)
        from klinepipe.triggers import PendingKlinesTrigger

        alive, event = asyncio.run(_drill(PendingKlinesTrigger(topic=TOPIC, poll_interval=0.2), pg, brokers, port, tmp_path,
                                          seen))
    finally:
        logger.removeHandler(seen)
        for b in brokers:
            b.stop()
        pg.close()

    assert alive == {"postgres": True, "kafka": True}
    assert event.payload["topic"] == TOPIC and event.payload["closed_klines_seen"] >= 1
    for dependency in ("postgres", "kafka"):
        assert sum(f"watcher: {dependency} unreachable" in line for line in seen.lines) == 1, seen.lines
        assert sum(f"watcher: {dependency} is back after" in line for line in seen.lines) == 1, seen.lines


async def _until_logged(seen, text: str, timeout: float = 90.0) -> None:
    """Wait until the watcher logged ``text``: its backoff (up to 30 s) decides when it looks again, not the test."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not any(text in line for line in seen.lines):
        assert asyncio.get_running_loop().time() < deadline, (text, seen.lines)
        await asyncio.sleep(0.2)


async def _drill(trigger, pg: StoppablePostgres, brokers: list, port: int, tmp_path, seen):
    events = trigger.run()
    first = asyncio.ensure_future(events.__anext__())
    alive = {}
    await asyncio.sleep(1.0)  # quiet polls: nothing waits yet
    assert not first.done()

    await asyncio.to_thread(pg.stop)
    await asyncio.sleep(OUTAGE_S)
    alive["postgres"] = not first.done()
    await asyncio.to_thread(pg.start)
    # the broker goes down only once the watcher saw PostgreSQL back: on a loaded machine its backed-off next look
    # came after the broker's whole outage (CI: "postgres is back after 25.6s", and no kafka outage seen at all)
    await _until_logged(seen, "watcher: postgres is back after")

    await asyncio.to_thread(brokers[0].stop)
    await asyncio.sleep(OUTAGE_S)
    alive["kafka"] = not first.done()
    brokers.append(await asyncio.to_thread(start_broker, port, log_path=tmp_path / "tansu2.log"))
    await asyncio.to_thread(ensure_topics, {"bootstrap.servers": brokers[1].bootstrap_servers}, {TOPIC: 6})

    await asyncio.to_thread(produce, brokers[1].bootstrap_servers, TOPIC, closed_events(sample_rows(3)))
    event = await asyncio.wait_for(first, 120)
    await events.aclose()
    return alive, event
