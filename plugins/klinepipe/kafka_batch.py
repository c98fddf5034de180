"""A bounded read of a Kafka topic from explicit offsets (no consumer-group state is trusted).

The batch reads every partition to its end (the partition-EOF event of the first fetch that reaches
it), or stops earlier at ``max_messages`` or ``max_seconds``. End-of-log comes from fetch responses,
not from ListOffsets, because the embedded tansu broker answers ListOffsets(latest) with the base offset
of the last record batch + 1 rather than the true high watermark.

Messages are handed out in chunks while librdkafka keeps fetching in its own thread, so parsing a
chunk overlaps with fetching the next one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient

from klinepipe.errors import BrokerRejectedError, BrokerUnavailableError

log = logging.getLogger(__name__)


# librdkafka fetch settings for a bounded read that drains the topic as fast as it can (the caller's
# configuration overrides them):
# - a short fetch wait: a batch ends at the partition-EOF of a fetch, which the broker would otherwise hold
#   back up to 500 ms waiting for new data;
# - a generous prefetch: librdkafka (>= 2.4) pauses fetching for ``fetch.queue.backoff.ms`` (default 1 s)
#   whenever its queue holds ``queued.min.messages`` (default 100k), so a reader faster than the fetcher
#   spent most of its time waiting (300k messages: 1.45 s with the defaults, 0.55 s with these). The
#   backoff is short, not 0: 0 makes the fetch thread spin whenever the queue is full.
FETCH_SETTINGS = {"fetch.wait.max.ms": 50, "queued.min.messages": 1_000_000, "fetch.queue.backoff.ms": 10}

# How long one consume() waits for a full chunk. librdkafka returns a chunk only when it is full or this wait is
# over, so a small read (the watcher's peek, an event-path batch of a few klines) used to wait the whole 0.2 s
# for each of its chunks, on every candle's path; a bulk read fills its chunks from the prefetched queue at once.
CONSUME_WAIT_S = 0.02


@dataclass
class BatchRead:
    """What a bounded read covered: start and next offsets per partition, and any offset resets."""

    topic: str
    start_offsets: dict[int, int] = field(default_factory=dict)
    next_offsets: dict[int, int] = field(default_factory=dict)
    resets: dict[int, str] = field(default_factory=dict)  # partition -> why its stored offset was not usable
    messages: int = 0


def read_chunks(kafka_config: dict, topic: str, stored: dict[int, int], read: BatchRead, *,
                max_messages: int = 500_000, max_seconds: float = 30.0, timeout: float = 10.0,
                partitions: list[int] | None = None) -> Iterator[list[Message]]:
    """Yield lists of messages of ``topic`` (its ``partitions``, default all) from the ``stored`` next offsets."""
    consumer = Consumer({**FETCH_SETTINGS, **kafka_config,
                         "group.id": kafka_config.get("group.id", "klinepipe-ingest"),
                         "enable.auto.commit": False, "enable.auto.offset.store": False,
                         "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    try:
        yield from _chunks(consumer, topic, stored, read, max_messages, max_seconds, timeout, partitions)
    except KafkaException as exc:
        raise BrokerUnavailableError(f"reading {topic!r} failed: {exc}") from exc
    finally:
        consumer.close()


def _chunks(consumer: Consumer, topic: str, stored: dict[int, int], read: BatchRead, max_messages: int,
            max_seconds: float, timeout: float, only: list[int] | None) -> Iterator[list[Message]]:
    partitions = [p for p in topic_partitions(consumer, topic, timeout) if only is None or p in only]
    if not partitions:
        return
    consumer.assign([TopicPartition(topic, p, _start(read, stored, p)) for p in partitions])
    open_partitions, first_seen = set(partitions), set()
    deadline = time.monotonic() + max_seconds
    while open_partitions and read.messages < max_messages and time.monotonic() < deadline:
        chunk = []
        for msg in consumer.consume(num_messages=min(10_000, max_messages - read.messages), timeout=CONSUME_WAIT_S):
            partition, err = msg.partition(), msg.error()
            if err is not None:
                _on_error(err, msg, open_partitions, read, topic)
            elif partition in open_partitions:  # else: that partition reached its end; the next batch reads on
                if partition not in first_seen:
                    first_seen.add(partition)
                    _note_reset(read, partition, msg.offset())
                chunk.append(msg)
                read.next_offsets[partition] = msg.offset() + 1
        read.messages += len(chunk)
        if chunk:
            yield chunk


def topic_partitions(consumer, topic: str, timeout: float = 10.0) -> list[int]:
    """The partition ids of ``topic`` (empty when it does not exist yet)."""
    info = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if info is None or info.error is not None:
        if info is not None and info.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise BrokerUnavailableError(f"topic {topic!r}: {info.error}")
        log.info("topic %s does not exist yet: nothing to read", topic)
        return []
    return sorted(info.partitions)


def _start(read: BatchRead, stored: dict[int, int], partition: int) -> int:
    start = stored.get(partition, OFFSET_BEGINNING)
    read.start_offsets[partition] = start
    if start >= 0:
        read.next_offsets[partition] = start
    return start


def _on_error(err: KafkaError, msg: Message, open_partitions: set[int], read: BatchRead, topic: str) -> None:
    if err.code() == KafkaError._PARTITION_EOF:
        open_partitions.discard(msg.partition())
        read.next_offsets.setdefault(msg.partition(), msg.offset())
    elif not err.retriable():  # librdkafka retries the retriable ones itself
        raise consume_error(err, topic)


# Errors librdkafka does not flag retriable but that are about reaching the broker: the next run may well succeed.
_IN_TRANSIT = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE,
                         KafkaError._TIMED_OUT, KafkaError._MSG_TIMED_OUT, KafkaError.NETWORK_EXCEPTION})


def consume_error(err: KafkaError, topic: str) -> BrokerUnavailableError | BrokerRejectedError:
    """A consumer error that ends the batch, by category: in transit (retryable) or refused for good (fatal)."""
    if err.code() in _IN_TRANSIT and not err.fatal():
        return BrokerUnavailableError(f"consume from {topic!r}: {err}")
    return BrokerRejectedError(f"consume from {topic!r}: {err}")


def _note_reset(read: BatchRead, partition: int, first_offset: int) -> None:
    """The stored offset was out of range and the consumer restarted at the earliest message."""
    start = read.start_offsets.get(partition, OFFSET_BEGINNING)
    if start < 0 or first_offset == start:
        return
    why = (f"stored offset {start} is past the log end: the topic was recreated" if first_offset < start
           else f"stored offset {start} is below the log start {first_offset}: messages expired before loading")
    read.resets[partition] = why
    log.warning("partition %s: %s; reading from offset %s", partition, why, first_offset)


def list_partitions(kafka_config: dict, topic: str, timeout: float = 10.0) -> list[int]:
    """The partition ids of ``topic``, asked of the broker (empty when the topic does not exist yet)."""
    consumer = Consumer({**kafka_config, "group.id": kafka_config.get("group.id", "klinepipe-ingest")})
    try:
        return topic_partitions(consumer, topic, timeout)
    except KafkaException as exc:
        raise BrokerUnavailableError(f"listing partitions of {topic!r} failed: {exc}") from exc
    finally:
        consumer.close()


def topic_id(kafka_config: dict, topic: str, timeout: float = 10.0) -> str | None:
    """The broker's id of ``topic`` as it exists now (Kafka topic ids, KIP-516; tansu has them too): a topic
    deleted and created again gets a new one. None when the topic does not exist yet, the broker gives no id
    or cannot be asked (the offsets are then trusted as they are)."""
    admin = AdminClient({k: v for k, v in kafka_config.items() if k not in _CONSUMER_ONLY})
    try:
        found = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)[topic].result(timeout)
    except KafkaException:
        return None
    uid = str(found.topic_id) if found.topic_id is not None else ""
    return uid if uid.strip("A=") else None  # all zeros: no id


_CONSUMER_ONLY = ("group.id", "enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof",
                  "auto.offset.reset", "isolation.level", *FETCH_SETTINGS)


def message_source(msg: Message) -> str:
    """The ``source`` header of a message (``unknown`` when absent)."""
    return header_text(msg, "source") or "unknown"


def header_text(msg: Message, header: str) -> str | None:
    """A header's value as text PostgreSQL can store (None when absent or empty): invalid UTF-8 and NUL
    (which no PostgreSQL text holds) become U+FFFD. Never raises, whatever the headers' bytes."""
    try:
        headers = msg.headers() or ()
    except UnicodeDecodeError:  # confluent-kafka decodes header names as UTF-8: a name that is not, names no header
        return None
    for name, value in headers:
        if name == header and value:
            return value.decode("utf-8", "replace").replace("\x00", "\ufffd")
    return None
