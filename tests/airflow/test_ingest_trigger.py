"""The Asset watcher's trigger fires only when a closed kline waits beyond the loader's stored offsets."""

import asyncio

import pytest

from klinepipe.ingest import ingest_batch
from tests.conftest import SAMPLE, airflow_connections
from tests.helpers import closed_events, produce, sample_rows

pytestmark = [pytest.mark.airflow, pytest.mark.integration]
CAPTURE = SAMPLE / "BTCUSDT-kline_5m-ws-20210914.jsonl"


def test_fires_on_a_waiting_closed_kline_only(airflow_env, engine, database_url, kafka_bootstrap, topic, monkeypatch):
    for key, value in airflow_connections(database_url, kafka_bootstrap).items():
        monkeypatch.setenv(key, value)
    from klinepipe.triggers import PendingKlinesTrigger, pending_closed_klines

    in_progress = [line for line in CAPTURE.read_bytes().splitlines() if line.strip()]
    produce(kafka_bootstrap, topic, in_progress[:10])
    assert pending_closed_klines(topic, "ingest_klines") == 0  # updates only: the cron will load them

    produce(kafka_bootstrap, topic, closed_events(sample_rows(3)))
    assert pending_closed_klines(topic, "ingest_klines") >= 1
    event = asyncio.run(_first_event(PendingKlinesTrigger(topic=topic, poll_interval=0.1)))
    assert event.payload["topic"] == topic

    ingest_batch(engine, {"bootstrap.servers": kafka_bootstrap}, topic=topic)
    assert pending_closed_klines(topic, "ingest_klines") == 0  # loaded: nothing waits any more


async def _first_event(trigger):
    async for event in trigger.run():
        return event
