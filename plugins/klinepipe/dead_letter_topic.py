"""The streaming sidecar's dead-letter topic (``binance.klines.dlq``) -> ``etl.dead_letters``, exactly once.

The sidecar publishes every frame it rejects to the dead-letter topic with an ``error`` header. The broker
is not an archive (the embedded one keeps nothing across a restart), so each ingest run copies what is new
there into ``etl.dead_letters``, beside the loader's own rejects: one table says everything the pipeline
refused and why. Rows and the topic's next offsets commit in one transaction, as for candles.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Engine

from klinepipe import DLQ_TOPIC
from klinepipe.db import raw_transaction
from klinepipe.dead_letters import DeadLetter, insert_dead_letters
from klinepipe.ingest import CONSUMER
from klinepipe.kafka_batch import BatchRead, header_text, read_chunks, topic_id
from klinepipe.kafka_offsets import read_offsets, write_offsets

log = logging.getLogger(__name__)

NO_ERROR = "published to the dead-letter topic without an error header"


def load_dead_letter_topic(engine: Engine, kafka_config: dict, *, topic: str = DLQ_TOPIC, consumer: str = CONSUMER,
                           max_messages: int = 100_000, max_seconds: float = 30.0) -> int:
    """Copy the dead-letter topic's new messages into ``etl.dead_letters``; return how many."""
    with raw_transaction(engine) as cur:
        incarnation = topic_id(kafka_config, topic)
        stored = read_offsets(cur, consumer, topic, lock=True, topic_id=incarnation)
        read = BatchRead(topic)
        dead = [DeadLetter(topic, m.partition(), m.offset(), m.key(), m.value(), header_text(m, "error") or NO_ERROR)
                for chunk in read_chunks(kafka_config, topic, stored, read, max_messages=max_messages,
                                         max_seconds=max_seconds)
                for m in chunk]
        insert_dead_letters(cur, dead)
        write_offsets(cur, consumer, topic, read.next_offsets, incarnation)
    if dead:
        log.warning("%d new dead letter(s) from %s: SELECT * FROM etl.dead_letters WHERE topic = '%s'", len(dead), topic, topic)
    return len(dead)
