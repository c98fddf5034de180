"""The sidecar's topics: create the ones that do not exist yet, once the broker answers."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streaming.errors import BrokerUnreachable
from streaming.kafka_client import LIBRDKAFKA_LOG

log = logging.getLogger(__name__)

_PRODUCER_ONLY = ("enable.idempotence", "acks", "compression.", "linger.", "batch.", "queue.", "message.timeout",
                  "retries", "retry.", "max.in.flight", "delivery.")


def ensure_topics(bootstrap_config: dict, topics: dict[str, int], replication_factor: int = 1, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet (``{name: partitions}``); ``BrokerUnreachable`` when the broker
    does not answer within ``timeout`` seconds (quietly meanwhile: librdkafka's log lines are not printed)."""
    errors: list[str] = []
    admin = AdminClient({**{k: v for k, v in bootstrap_config.items() if not k.startswith(_PRODUCER_ONLY)},
                         "error_cb": lambda e: errors.append(e.str()), "logger": LIBRDKAFKA_LOG})
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        why = next((e for e in reversed(errors) if "brokers are down" not in e), errors[-1] if errors else str(exc))
        raise BrokerUnreachable(f"no Kafka broker answered at KAFKA_BOOTSTRAP_SERVERS={bootstrap_config.get('bootstrap.servers')}"
                                f" within {timeout:g}s ({why})") from None
    wanted = [NewTopic(name, num_partitions=n, replication_factor=replication_factor)
              for name, n in topics.items() if name not in existing]
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
