"""The state ``KafkaSink`` keeps, as types: one outgoing record, and the lifecycle of its current producer (pure)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One message for the topic or the dead-letter topic: what waits in the overflow, what a broken producer
    handed back, and what a failed delivery queues again are all this."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int  # the frame's receive time (0: the producer's clock)

    @classmethod
    def of_report(cls, msg) -> OutgoingRecord:
        """The record a delivery report is about (a confluent-kafka ``Message``)."""
        return cls(msg.topic(), msg.key(), msg.value(), msg.headers(), msg.timestamp()[1])


class ProducerState(enum.Enum):
    """Where the sink's current producer is in its life::

        DELIVERING --fatal error noted--> BROKEN --next poll--> PURGING --> new producer: DELIVERING
        DELIVERING --stalled while the broker answers (check_stall)--> PURGING --> new producer: DELIVERING
        BROKEN --replaced too often with nothing acknowledged--> FAILED (DeliveryError raised)

    While PURGING, the failed delivery reports of the old producer are the sink's own purge, not a new failure.

    Fatal producer errors: librdkafka makes an idempotent producer unusable (``_FATAL``) when it cannot keep
    its guarantee -- seen here when a broker that lost its state answers a producer with in-flight batches
    (``UNKNOWN_PRODUCER_ID``: "unable to retry without risking duplication/reordering"). confluent-kafka then
    raises from ``poll``, ``flush`` and ``produce`` (``error_cb`` never sees it), and the queued messages come
    back as failed delivery reports. The sink notes the error, takes those messages back and re-sends them, in
    order, on a new producer (the same path as a stall), instead of stopping the sidecar with its in-memory
    backlog lost. Producers that keep failing with nothing acknowledged in between raise ``DeliveryError``.
    """

    DELIVERING = "delivering"
    BROKEN = "broken"
    PURGING = "purging"
    FAILED = "failed"
