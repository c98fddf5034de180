"""Event-driven scheduling for ``ingest_klines``: a trigger that fires when a closed kline waits in the topic.

``PendingKlinesTrigger`` runs in Airflow's triggerer. Every ``poll_interval`` seconds it reads the loader's
stored offsets from PostgreSQL and peeks at the topic from there (no consumer group, nothing committed):
when it finds a closing kline event (``"x":true``) it fires one ``TriggerEvent``, and the Asset watcher
turns that into an ``ingest_klines`` run. In-progress updates alone do not fire it; the 1-minute cron
picks those up. Connections come from ``klinepipe_db`` / ``klinepipe_kafka`` (or the env fallbacks).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

CLOSED = b'"x":true'


class PendingKlinesTrigger(BaseEventTrigger):
    def __init__(self, topic: str = "binance.klines", consumer: str = "ingest_klines", poll_interval: float = 2.0) -> None:
        super().__init__()
        self.topic, self.consumer, self.poll_interval = topic, consumer, poll_interval

    def serialize(self) -> tuple[str, dict]:
        return ("klinepipe.triggers.PendingKlinesTrigger",
                {"topic": self.topic, "consumer": self.consumer, "poll_interval": self.poll_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            found = await asyncio.to_thread(pending_closed_klines, self.topic, self.consumer)
            if found:
                yield TriggerEvent({"topic": self.topic, "closed_klines_seen": found})
                return
            await asyncio.sleep(self.poll_interval)


def pending_closed_klines(topic: str, consumer: str, limit: int = 100_000) -> int:
    """How many closing kline events wait beyond the stored offsets (stops counting at the first chunk with one)."""
    import psycopg2

    from klinepipe.airflow_conn import database_url, kafka_config
    from klinepipe.candle_store import read_offsets
    from klinepipe.kafka_batch import BatchRead, read_chunks, topic_id

    incarnation = topic_id(kafka_config(), topic)
    scheme, sep, rest = database_url().partition("://")
    with psycopg2.connect(f"{scheme.split('+')[0]}{sep}{rest}") as conn, conn.cursor() as cur:
        stored = read_offsets(cur, consumer, topic, topic_id=incarnation)
    closed = 0
    for chunk in read_chunks(kafka_config(), topic, stored, BatchRead(topic), max_messages=limit, max_seconds=5):
        closed += sum(1 for m in chunk if CLOSED in (m.value() or b""))
        if closed:
            break
    return closed
