"""A bounded read of a Kafka topic from explicit offsets (no consumer-group state is trusted).

The batch reads every partition to its end (the partition-EOF event of the first fetch that reaches
it), or stops earlier at ``max_messages`` or ``max_seconds``. End-of-log comes from fetch responses,
not from ListOffsets, because the embedded tansu broker answers ListOffsets(latest) with the base offset
of the last record batch + 1 rather than the true high watermark. Partitions are ``assign()``-ed at the offsets stored in PostgreSQL, so a re-run
reads exactly what the last committed run did not.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from klinepipe.errors import BrokerUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    source: str


@dataclass(slots=True)
class Batch:
    topic: str
    records: list[Record] = field(default_factory=list)
    start_offsets: dict[int, int] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)
    resets: dict[int, str] = field(default_factory=dict)  # partition -> why its stored offset was not usable


def read_batch(
    kafka_config: dict,
    topic: str,
    stored: dict[int, int],
    *,
    max_messages: int = 500_000,
    max_seconds: float = 30.0,
    timeout: float = 10.0,
) -> Batch:
    """Read ``topic`` from the ``stored`` next offsets up to the watermarks seen now."""
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": kafka_config.get("group.id", "klinepipe-ingest"),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        return _read(consumer, topic, stored, max_messages, max_seconds, timeout)
    except KafkaException as exc:
        raise BrokerUnavailableError(f"reading {topic!r} failed: {exc}") from exc
    finally:
        consumer.close()


def _read(consumer: Consumer, topic: str, stored: dict[int, int], max_messages: int, max_seconds: float, timeout: float) -> Batch:
    batch = Batch(topic=topic)
    metadata = consumer.list_topics(topic, timeout=timeout)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        if info is not None and info.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise BrokerUnavailableError(f"topic {topic!r}: {info.error}")
        log.info("topic %s does not exist yet: nothing to read", topic)
        return batch
    assignment = []
    for partition in sorted(info.partitions):
        start = stored.get(partition, OFFSET_BEGINNING)
        batch.start_offsets[partition] = start
        if start >= 0:
            batch.next_offsets[partition] = start
        assignment.append(TopicPartition(topic, partition, start))
    consumer.assign(assignment)
    open_partitions = set(info.partitions)
    first_seen: set[int] = set()
    deadline = time.monotonic() + max_seconds
    while open_partitions and len(batch.records) < max_messages and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=min(10_000, max_messages - len(batch.records)), timeout=0.2):
            partition, err = msg.partition(), msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard(partition)
                    batch.next_offsets.setdefault(partition, msg.offset())
                    continue
                if err.retriable():
                    continue
                raise BrokerUnavailableError(f"consume from {topic!r}: {err}")
            if partition not in open_partitions:
                continue  # this partition already reached its end: the next batch reads on
            offset = msg.offset()
            if partition not in first_seen:
                first_seen.add(partition)
                _note_reset(batch, partition, offset)
            batch.records.append(Record(partition, offset, msg.key(), msg.value(), _source(msg.headers())))
            batch.next_offsets[partition] = offset + 1
    return batch


def _note_reset(batch: Batch, partition: int, first_offset: int) -> None:
    """The stored offset was out of range and the consumer restarted at the earliest message."""
    start = batch.start_offsets.get(partition, OFFSET_BEGINNING)
    if start < 0 or first_offset == start:
        return
    why = (f"stored offset {start} is past the log end: the topic was recreated" if first_offset < start
           else f"stored offset {start} is below the log start {first_offset}: messages expired before loading")
    batch.resets[partition] = why
    log.warning("partition %s: %s; reading from offset %s", partition, why, first_offset)


def _source(headers: list[tuple[str, bytes]] | None) -> str:
    for name, value in headers or ():
        if name == "source" and value:
            return value.decode("utf-8", "replace")
    return "unknown"
