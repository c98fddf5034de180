"""The Kafka side of the sidecar: an idempotent producer whose deliveries are all checked.

``publish`` never drops: when the local queue is full it waits for the broker (backpressure); a
failed delivery is raised on the next call, not logged and forgotten. ``close`` flushes everything.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """The broker did not acknowledge a message."""


class KafkaSink:
    def __init__(self, producer: Producer, topic: str, dlq_topic: str) -> None:
        self._producer = producer
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.published = 0
        self.acked = 0
        self.dead_lettered = 0
        self._failure: KafkaError | None = None

    def publish(self, key: bytes, value: bytes, source: str, received_at_ms: int) -> None:
        headers = [("source", source.encode()), ("received_at", str(received_at_ms).encode())]
        self._produce(self.topic, key, value, headers)
        self.published += 1

    def dead_letter(self, value: bytes, error: str, source: str, received_at_ms: int) -> None:
        headers = [("error", error.encode()), ("source", source.encode()), ("received_at", str(received_at_ms).encode())]
        self._produce(self.dlq_topic, None, value, headers)
        self.dead_lettered += 1

    def poll(self) -> None:
        self._producer.poll(0)
        self._raise_failure()

    def close(self, timeout: float = 60.0) -> None:
        remaining = self._producer.flush(timeout)
        self._raise_failure()
        if remaining:
            raise DeliveryError(f"{remaining} messages still unacknowledged after {timeout}s")

    def _produce(self, topic: str, key: bytes | None, value: bytes, headers) -> None:
        while True:
            self._raise_failure()
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery)
                return
            except BufferError:
                self._producer.poll(0.1)  # queue full: wait for the broker instead of dropping

    def _on_delivery(self, err: KafkaError | None, _msg) -> None:
        if err is not None:
            self._failure = err
        else:
            self.acked += 1

    def _raise_failure(self) -> None:
        if self._failure is not None:
            err, self._failure = self._failure, None
            raise DeliveryError(f"delivery failed: {err}")


def ensure_topics(bootstrap_config: dict, topics: dict[str, int], replication_factor: int = 1, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet (``{name: partitions}``)."""
    admin = AdminClient({k: v for k, v in bootstrap_config.items() if not k.startswith(("enable.idem", "acks", "compression", "linger", "batch.", "queue."))})
    existing = admin.list_topics(timeout=timeout).topics
    wanted = [NewTopic(name, num_partitions=n, replication_factor=replication_factor) for name, n in topics.items() if name not in existing]
    if not wanted:
        return
    for name, fut in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            fut.result(timeout)
            log.info("created topic %s", name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(t.topic in admin.list_topics(timeout=timeout).topics for t in wanted):
        time.sleep(0.1)
