"""The Kafka side of the sidecar: an idempotent producer whose deliveries are all checked.

Nothing is dropped. ``publish`` never blocks: when librdkafka's bounded queue is full the message
waits in a small overflow list (per-key order kept), and ``congested`` turns true so that the
websocket readers stop reading until ``wait_for_room`` sees the queue drain (backpressure, bounded
memory). A failed delivery is raised on the next call, not logged and forgotten. ``close`` flushes
everything. Each acknowledgement records frame-received -> acknowledged latency (the message timestamp
is the receive time, in ms).

Stalled producer recovery: an idempotent producer whose broker lost its producer state (a broker
that lost its log -- tansu restarts empty -- or a cluster rebuilt) gets ``UNKNOWN_PRODUCER_ID`` forever
and never delivers again. When messages wait, the broker answers metadata requests, yet nothing was
acknowledged for ``stall_timeout`` seconds, ``check_stall`` purges the old producer, takes every
purged message back (from its delivery reports, in order) and re-sends it on a new producer, which
gets a new producer id. A purged in-flight batch may already have been written, so this rare path can
repeat a message (the loader's upsert is idempotent); it never drops one. Likewise a delivery that
failed for a reason a new attempt can fix (the topic or a partition vanished -- e.g. re-created with
fewer partitions --, a configured message timeout) is queued again, logged and counted, not raised.

Fatal producer errors: see ``ProducerState`` (streaming/kafka_sink_state.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Producer

from streaming.errors import DeliveryError
from streaming.kafka_client import client_callbacks
from streaming.kafka_sink_state import OutgoingRecord, ProducerState
from streaming.metrics import Stats

log = logging.getLogger(__name__)

_RESEND = frozenset((KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART,
                     KafkaError._MSG_TIMED_OUT))
# a purged message, or one refused because the idempotent producer's session broke: a new producer can send it
_TAKE_BACK = frozenset((KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT, KafkaError._FATAL, KafkaError._INCONSISTENT,
                        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaError.UNKNOWN_PRODUCER_ID,
                        KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.INVALID_PRODUCER_ID_MAPPING))
_MAX_FRUITLESS_REPLACEMENTS = 3  # fatal producers replaced with no acknowledgement in between before giving up




class KafkaSink:
    def __init__(self, producer: Producer | None, topic: str, dlq_topic: str, *, stats: Stats | None = None,
                 high_water: int = 90_000, producer_factory: Callable[[], Producer] | None = None,
                 stall_timeout: float = 15.0) -> None:
        self._factory, self.stall_timeout = producer_factory, stall_timeout
        self._producer = producer if producer is not None else producer_factory()
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.stats = stats or Stats()
        self.high_water = high_water
        self.published = 0
        self.dead_lettered = 0
        self._overflow: deque[OutgoingRecord] = deque()  # waiting for room in the producer (per-key order kept)
        self._failure: KafkaError | None = None
        self._sources: dict[str, bytes] = {}
        self.state = ProducerState.DELIVERING
        self._broken_by: str | None = None  # why the producer broke (BROKEN, or PURGING a broken one)
        self._taken_back: list[OutgoingRecord] = []  # messages the producer handed back, to re-send on a new one
        self._fruitless, self._acked_at_replacement = 0, -1
        self._retry: list[tuple[OutgoingRecord, str]] = []  # failed deliveries a new attempt can fix, and why
        self._progress = (0, time.monotonic())
        self._kafka = self.stats.dependency("kafka")

    @property
    def acked(self) -> int:
        return self.stats.acked

    @property
    def queue_depth(self) -> int:
        return len(self._producer) + len(self._overflow)

    @property
    def congested(self) -> bool:
        return bool(self._overflow) or len(self._producer) >= self.high_water

    def publish(self, key: bytes, value: bytes, source: str, received_at_ms: int) -> None:
        src = self._sources.get(source) or self._sources.setdefault(source, source.encode())
        self._send(self.topic, key, value, [("source", src), ("received_at", str(received_at_ms).encode())], received_at_ms)
        self.published += 1
        pub = self.stats.published
        pub[source] = pub.get(source, 0) + 1

    def send(self, record: OutgoingRecord) -> None:
        """Send one record as it is (any topic, headers, key or none): the seam under ``publish`` and ``dead_letter``."""
        self._send(record.topic, record.key, record.value, record.headers, record.timestamp_ms)

    def dead_letter(self, value: bytes, error: str, source: str, received_at_ms: int) -> None:
        headers = [("error", error.encode("utf-8", "backslashreplace")), ("source", source.encode()),
                   ("received_at", str(received_at_ms).encode())]
        self._send(self.dlq_topic, None, value, headers, received_at_ms)
        self.dead_lettered += 1
        self.stats.dead_lettered += 1

    def poll(self) -> None:
        """Serve delivery reports and move waiting messages into the producer; raise a failed delivery."""
        self._serve(self._producer, 0)
        if self.state is ProducerState.BROKEN:
            self._replace_fatal()
        if self._retry:
            retry, self._retry = self._retry, []
            self.stats.redelivered += len(retry)
            log.warning("%d deliveries failed with %s; sending them again", len(retry), retry[0][1])
            self._overflow.extend(record for record, _ in retry)
        if self._overflow:
            self._drain_overflow()
        self._raise_failure()

    async def wait_for_room(self, interval: float = 0.01) -> None:
        """Backpressure: return once the producer can take messages again (logs and flags the pause)."""
        if not self.congested:
            return
        self.stats.backpressure = 1
        self.stats.backpressure_pauses += 1
        started = time.monotonic()
        log.warning("backpressure: producer queue full (%d waiting); reading paused until the broker acknowledges",
                    self.queue_depth)
        while self.congested:
            self.poll()
            await asyncio.sleep(interval)
        self.stats.backpressure = 0
        log.warning("backpressure over after %.1fs; reading resumed", time.monotonic() - started)

    def close(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.poll()  # re-queues failed deliveries, replaces a fatal producer, drains the overflow
            left = deadline - time.monotonic()
            if self._overflow:
                if left <= 0:
                    break
                self._serve(self._producer, min(0.05, left))
                continue
            flushed = self._flush(max(0.0, min(1.0, left))) == 0
            if flushed and not self._retry and self._broken_by is None and not self._overflow:
                break
            if time.monotonic() >= deadline:
                break
        remaining = len(self._producer) + len(self._overflow) + len(self._retry) + len(self._taken_back)
        self._raise_failure()
        if remaining:
            raise DeliveryError(f"{remaining} messages still unacknowledged after {timeout}s")

    def _send(self, topic: str, key: bytes | None, value: bytes, headers, at_ms: int) -> None:
        if not self._overflow and self._broken_by is None:
            try:
                self._producer.produce(topic, value, key, headers=headers, timestamp=at_ms, on_delivery=self._on_delivery)
                return
            except BufferError:
                pass
            except KafkaException as exc:
                self._note_fatal(exc)
        self._overflow.append(OutgoingRecord(topic, key, value, headers, at_ms))

    def _drain_overflow(self) -> None:
        overflow, produce = self._overflow, self._producer.produce
        while overflow and self._broken_by is None:
            r = overflow[0]
            try:
                produce(r.topic, r.value, r.key, headers=r.headers, timestamp=r.timestamp_ms, on_delivery=self._on_delivery)
            except BufferError:
                return
            except KafkaException as exc:
                self._note_fatal(exc)
                return
            overflow.popleft()

    def _serve(self, producer: Producer, timeout: float) -> int:
        """``producer.poll``; confluent-kafka raises a fatal error from it (not via ``error_cb``): noted, not raised."""
        try:
            return producer.poll(timeout)
        except KafkaException as exc:
            self._note_fatal(exc)
            return -1

    def _flush(self, timeout: float) -> int:
        try:
            return self._producer.flush(timeout)
        except KafkaException as exc:
            self._note_fatal(exc)
            return len(self._producer)

    def _note_fatal(self, exc: KafkaException) -> None:
        """A call refused with a fatal error: the producer is replaced by the next ``poll``; anything else is raised."""
        err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if err is None or not (err.fatal() or err.code() == KafkaError._FATAL):
            raise exc
        if self._broken_by is None:
            log.error("producer fatal error: %s", err.str())
            self._broke(err.str())

    def _broke(self, why: str) -> None:
        """Note that the producer is unusable (the first reason counts); a producer being purged stays PURGING."""
        self._broken_by = self._broken_by or why
        if self.state is not ProducerState.PURGING:
            self.state = ProducerState.BROKEN

    async def check_stall(self) -> bool:
        """Replace a producer that has stopped delivering to a reachable broker (see the module doc)."""
        now, acked = time.monotonic(), self.stats.acked
        if acked != self._progress[0] or len(self._producer) == 0:
            self._progress = (acked, now)
            return False
        if self._factory is None or now - self._progress[1] < self.stall_timeout:
            return False
        producer = self._producer
        if not await asyncio.to_thread(self._broker_reachable, producer):
            return False  # the broker is down: waiting is right
        if self._producer is not producer or self.stats.acked != acked:
            return False  # replaced (a fatal error) or delivering again while the broker was asked
        log.warning("producer stalled: %d messages unacknowledged for %.0fs while the broker answers; "
                    "re-sending them on a new producer", len(self._producer), self.stall_timeout)
        self._recycle()
        self._progress = (self.stats.acked, time.monotonic())
        return True

    def _broker_reachable(self, producer: Producer) -> bool:
        try:
            producer.list_topics(self.topic, timeout=2)
            return True
        except KafkaException:
            return False

    def _replace_fatal(self) -> None:
        acked = self.stats.acked
        self._fruitless = self._fruitless + 1 if acked == self._acked_at_replacement else 1
        self._acked_at_replacement = acked
        if self._factory is None or self._fruitless > _MAX_FRUITLESS_REPLACEMENTS:
            why, self._broken_by, self.state = self._broken_by, None, ProducerState.FAILED
            raise DeliveryError(f"the producer failed for good: {why}")
        log.warning("producer failed for good (%s); re-sending its %d unacknowledged messages on a new producer",
                    self._broken_by, len(self._producer) + len(self._taken_back))
        self._recycle()

    def _recycle(self) -> None:
        """Purge the current producer, take back every message it held (in order), re-send them on a new one."""
        old = self._producer
        self.state = ProducerState.PURGING
        try:
            old.purge(in_queue=True, in_flight=True, blocking=True)
            for _ in range(100):
                if self._serve(old, 0.05) == 0 and len(old) == 0:
                    break
            if len(old):
                log.error("the old producer still holds %d messages after its purge; they may be lost", len(old))
        finally:
            self.stats.recycled_messages += len(self._taken_back)
            self._overflow.extendleft(reversed(self._taken_back))
            self._taken_back, self._broken_by, self.state = [], None, ProducerState.DELIVERING
        self._producer = self._factory()
        self.stats.producer_recycles += 1
        self._drain_overflow()

    def _on_delivery(self, err: KafkaError | None, msg) -> None:
        if err is not None and (err.code() in _TAKE_BACK or err.fatal() or self._broken_by is not None):
            self._taken_back.append(OutgoingRecord.of_report(msg))
            if self.state is not ProducerState.PURGING:  # the producer's session broke: librdkafka handed it back
                self._broke(err.str())
            return
        if err is not None and err.code() in _RESEND:
            self._retry.append((OutgoingRecord.of_report(msg), err.str()))
            return
        if err is not None:
            self._failure = err
            return
        stats = self.stats
        stats.acked += 1
        if not self._kafka.up:
            self._kafka.ok()
        ts = msg.timestamp()[1]
        if ts > 0:
            stats.observe_latency_ms(time.time() * 1000 - ts)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            err, self._failure = self._failure, None
            raise DeliveryError(f"delivery failed: {err}")


def build_sink(settings, stats: Stats | None = None) -> KafkaSink:
    """A sink for ``KafkaSettings``: idempotent producer, high-water mark at 90 % of the queue, stall recovery."""
    stats = stats or Stats()
    callbacks = client_callbacks(stats.dependency("kafka"))
    return KafkaSink(None, settings.topic, settings.dlq_topic, stats=stats, high_water=int(settings.queue_max_messages * 0.9),
                     producer_factory=lambda: Producer({**settings.producer_config(), **callbacks}),
                     stall_timeout=settings.stall_timeout)




