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

Fatal producer errors: librdkafka makes an idempotent producer unusable (``_FATAL``) when it cannot keep
its guarantee -- seen here when a broker that lost its state answers a producer with in-flight batches
(``UNKNOWN_PRODUCER_ID``: "unable to retry without risking duplication/reordering"). confluent-kafka then
raises from ``poll``, ``flush`` and ``produce`` (``error_cb`` never sees it), and the queued messages come
back as failed delivery reports. The sink notes the error, takes those messages back and re-sends them, in
order, on a new producer (the same path as a stall), instead of stopping the sidecar with its in-memory
backlog lost. Producers that keep failing with nothing acknowledged in between raise ``DeliveryError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from klinepipe.outage import Outage
from streaming.errors import BrokerUnreachable, ClientConfigError, DeliveryError
from streaming.metrics import Stats

log = logging.getLogger(__name__)
# librdkafka's own log lines (one per failed connection attempt, hundreds in an outage) go here, not to stderr;
# what they say reaches the operator once through ``error_cb`` (an outage) instead. Quiet unless raised.
LIBRDKAFKA_LOG = logging.getLogger("streaming.librdkafka")
LIBRDKAFKA_LOG.setLevel(logging.CRITICAL)
_BROKER_DOWN = frozenset((KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE))

_PRODUCER_ONLY = ("enable.idempotence", "acks", "compression.", "linger.", "batch.", "queue.", "message.timeout",
                  "retries", "retry.", "max.in.flight", "delivery.")


_RESEND = frozenset((KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART,
                     KafkaError._MSG_TIMED_OUT))
# a purged message, or one refused because the idempotent producer's session broke: a new producer can send it
_TAKE_BACK = frozenset((KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT, KafkaError._FATAL, KafkaError._INCONSISTENT,
                        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaError.UNKNOWN_PRODUCER_ID,
                        KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.INVALID_PRODUCER_ID_MAPPING))
_MAX_FRUITLESS_REPLACEMENTS = 3  # fatal producers replaced with no acknowledgement in between before giving up


def client_callbacks(kafka: Outage) -> dict:
    """librdkafka client config: its errors to ``kafka`` (broker down: one line per outage) and its log lines
    to the quiet ``LIBRDKAFKA_LOG``; any other error (auth, TLS, ...) is logged once until it changes."""
    last: list[str] = [""]

    def on_error(err: KafkaError) -> None:
        if err.code() in _BROKER_DOWN:
            kafka.failed(err.str())
        elif err.str() != last[0]:
            last[0] = err.str()
            log.error("kafka: %s", err.str())

    return {"error_cb": on_error, "logger": LIBRDKAFKA_LOG}


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
        self._overflow: deque[tuple] = deque()
        self._failure: KafkaError | None = None
        self._sources: dict[str, bytes] = {}
        self._purging = False  # in _recycle: the purge reports are ours, not a sign the producer failed
        self._taken_back: list[tuple] = []  # messages the producer handed back, to re-send on a new one
        self._fatal: str | None = None  # why the current producer is unusable
        self._fruitless, self._acked_at_replacement = 0, -1
        self._retry: list[tuple] = []
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

    def dead_letter(self, value: bytes, error: str, source: str, received_at_ms: int) -> None:
        headers = [("error", error.encode("utf-8", "backslashreplace")), ("source", source.encode()),
                   ("received_at", str(received_at_ms).encode())]
        self._send(self.dlq_topic, None, value, headers, received_at_ms)
        self.dead_lettered += 1
        self.stats.dead_lettered += 1

    def poll(self) -> None:
        """Serve delivery reports and move waiting messages into the producer; raise a failed delivery."""
        self._serve(self._producer, 0)
        if self._fatal is not None:
            self._replace_fatal()
        if self._retry:
            retry, self._retry = self._retry, []
            self.stats.redelivered += len(retry)
            log.warning("%d deliveries failed with %s; sending them again", len(retry), retry[0][-1])
            self._overflow.extend(r[:-1] for r in retry)
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
            if flushed and not self._retry and self._fatal is None and not self._overflow:
                break
            if time.monotonic() >= deadline:
                break
        remaining = len(self._producer) + len(self._overflow) + len(self._retry) + len(self._taken_back)
        self._raise_failure()
        if remaining:
            raise DeliveryError(f"{remaining} messages still unacknowledged after {timeout}s")

    def _produce(self, topic: str, key: bytes | None, value: bytes, headers) -> None:
        """Blocking produce for synchronous callers: waits for room instead of dropping."""
        while True:
            self._raise_failure()
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._on_delivery)
                return
            except BufferError:
                self._serve(self._producer, 0.1)

    def _send(self, topic: str, key: bytes | None, value: bytes, headers, at_ms: int) -> None:
        if not self._overflow and self._fatal is None:
            try:
                self._producer.produce(topic, value, key, headers=headers, timestamp=at_ms, on_delivery=self._on_delivery)
                return
            except BufferError:
                pass
            except KafkaException as exc:
                self._note_fatal(exc)
        self._overflow.append((topic, key, value, headers, at_ms))

    def _drain_overflow(self) -> None:
        overflow, produce = self._overflow, self._producer.produce
        while overflow and self._fatal is None:
            topic, key, value, headers, at_ms = overflow[0]
            try:
                produce(topic, value, key, headers=headers, timestamp=at_ms, on_delivery=self._on_delivery)
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
        if self._fatal is None:
            log.error("producer fatal error: %s", err.str())
            self._fatal = err.str()

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
            why, self._fatal = self._fatal, None
            raise DeliveryError(f"the producer failed for good: {why}")
        log.warning("producer failed for good (%s); re-sending its %d unacknowledged messages on a new producer",
                    self._fatal, len(self._producer) + len(self._taken_back))
        self._recycle()

    def _recycle(self) -> None:
        """Purge the current producer, take back every message it held (in order), re-send them on a new one."""
        old = self._producer
        self._purging = True
        try:
            old.purge(in_queue=True, in_flight=True, blocking=True)
            for _ in range(100):
                if self._serve(old, 0.05) == 0 and len(old) == 0:
                    break
            if len(old):
                log.error("the old producer still holds %d messages after its purge; they may be lost", len(old))
        finally:
            self._overflow.extendleft(reversed(self._taken_back))
            self._purging, self._taken_back, self._fatal = False, [], None
        self._producer = self._factory()
        self.stats.producer_recycles += 1
        self._drain_overflow()

    def _on_delivery(self, err: KafkaError | None, msg) -> None:
        if err is not None and (err.code() in _TAKE_BACK or err.fatal() or self._fatal is not None):
            self._taken_back.append((msg.topic(), msg.key(), msg.value(), msg.headers(), msg.timestamp()[1]))
            if not self._purging:  # the producer's session broke: librdkafka handed the message back
                self._fatal = self._fatal or err.str()
            return
        if err is not None and err.code() in _RESEND:
            self._retry.append((msg.topic(), msg.key(), msg.value(), msg.headers(), msg.timestamp()[1], err.str()))
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


_SETTING_OF = {"bootstrap.servers": "KAFKA_BOOTSTRAP_SERVERS", "security.protocol": "KAFKA_SECURITY_PROTOCOL",
               "sasl.mechanism": "KAFKA_SASL_MECHANISM", "sasl.username": "KAFKA_SASL_USERNAME",
               "sasl.password": "KAFKA_SASL_PASSWORD", "ssl.ca.location": "KAFKA_SSL_CA_LOCATION",
               "ssl.certificate.location": "KAFKA_SSL_CERTIFICATE_LOCATION", "ssl.key.location": "KAFKA_SSL_KEY_LOCATION",
               "ssl.key.password": "KAFKA_SSL_KEY_PASSWORD", "linger.ms": "KAFKA_LINGER_MS",
               "message.timeout.ms": "KAFKA_MESSAGE_TIMEOUT_MS"}


def check_client_config(settings) -> None:
    """Build (and drop) a producer from ``KafkaSettings``, so that a key or value librdkafka refuses fails at
    start naming its setting: a key from ``KAFKA_CONFIG``, else the ``KAFKA_*`` setting behind it."""
    config = settings.producer_config()
    try:
        Producer({**config, "error_cb": lambda _e: None, "logger": LIBRDKAFKA_LOG})
    except (KafkaException, TypeError, ValueError) as exc:
        text = exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else str(exc)
        for key, value in config.items():  # never echo a secret
            if "password" in key or "secret" in key:
                text = text.replace(str(value), "***")
        quoted = [k for k in config if f'"{k}"' in text or f"{k}:" in text or f"{k} " in text]
        name = next((("KAFKA_CONFIG" if k in settings.config else _SETTING_OF.get(k, "KAFKA_CONFIG")) for k in quoted),
                    "KAFKA_CONFIG" if settings.config else "KAFKA_*")
        raise ClientConfigError(f"invalid setting {name}: librdkafka refused it ({text})") from None


def build_sink(settings, stats: Stats | None = None) -> KafkaSink:
    """A sink for ``KafkaSettings``: idempotent producer, high-water mark at 90 % of the queue, stall recovery."""
    stats = stats or Stats()
    callbacks = client_callbacks(stats.dependency("kafka"))
    return KafkaSink(None, settings.topic, settings.dlq_topic, stats=stats, high_water=int(settings.queue_max_messages * 0.9),
                     producer_factory=lambda: Producer({**settings.producer_config(), **callbacks}),
                     stall_timeout=settings.stall_timeout)




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
