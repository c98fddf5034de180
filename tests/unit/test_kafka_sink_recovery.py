"""The sink replaces a producer that librdkafka made unusable, and loses nothing doing it.

A scripted producer stands in for librdkafka here, because a fatal idempotence error cannot be caused on
demand with a real broker (CI caught one once, when a restarted tansu answered a producer that had just
started on it: ``_FATAL`` "Unable to produce message: Local: Fatal error"). It behaves as librdkafka does
then: ``produce`` raises ``_FATAL`` and the messages it still held come back as failed delivery reports.
The integration test ``test_streaming_broker_down`` covers the broker side.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from confluent_kafka import KafkaError, KafkaException

from streaming.errors import DeliveryError
from streaming.kafka_sink import KafkaSink


class Msg:
    def __init__(self, topic, key, value, headers, ts) -> None:
        self._t = (topic, key, value, headers, ts)

    def topic(self):
        return self._t[0]

    def key(self):
        return self._t[1]

    def value(self):
        return self._t[2]

    def headers(self):
        return self._t[3]

    def timestamp(self):
        return (1, self._t[4])


class ScriptedProducer:
    """Acks what it holds on ``poll``; after ``fail_after`` accepted messages it turns fatal.

    When fatal, the next ``poll`` reports its queued messages back: the first with ``first_error`` (the
    broker error that broke the session), the others ``_PURGE_QUEUE``, as librdkafka fails its queues.
    """

    def __init__(self, fail_after: int | None = None, first_error: int = KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
                 raise_from_poll: bool = False) -> None:
        self.fail_after, self.first_error, self.raise_from_poll = fail_after, first_error, raise_from_poll
        self.accepted: list[tuple] = []
        self.queued: list[tuple] = []
        self.fatal = False
        self.fatal_event = False  # confluent-kafka raises the fatal error event from poll(), once

    def produce(self, topic, value=None, key=None, headers=None, timestamp=0, on_delivery=None):
        if self.fatal:
            raise KafkaException(KafkaError(KafkaError._FATAL, "Unable to produce message: Local: Fatal error", fatal=True))
        self.queued.append(((topic, key, value, headers, timestamp), on_delivery))
        self.accepted.append(value)
        if self.fail_after is not None and len(self.accepted) >= self.fail_after:
            self.fatal = True
            self.fatal_event = self.raise_from_poll

    def poll(self, _timeout=0):
        if self.fatal_event:  # half the reports are served, then the error event raises; the rest come next time
            half, self.queued = self.queued[:len(self.queued) // 2], self.queued[len(self.queued) // 2:]
            for m, cb in half:
                cb(KafkaError(KafkaError._PURGE_QUEUE), Msg(*m))
            self.fatal_event = False
            raise KafkaException(KafkaError(self.first_error, "ProduceRequest failed due to unknown producer id: "
                                            "unable to retry without risking duplication/reordering", fatal=True))
        served, self.queued = self.queued, []
        for i, (m, cb) in enumerate(served):
            if not self.fatal:
                cb(None, Msg(*m))
            else:
                cb(KafkaError(self.first_error if i == 0 else KafkaError._PURGE_QUEUE), Msg(*m))
        return len(served)

    def purge(self, in_queue=True, in_flight=True, blocking=True):
        for m, cb in self.queued:
            cb(KafkaError(KafkaError._PURGE_QUEUE), Msg(*m))
        self.queued = []

    def flush(self, _timeout=None):
        self.poll()
        return len(self.queued)

    def __len__(self):
        return len(self.queued)


def test_a_fatal_producer_is_replaced_and_its_messages_are_re_sent_in_order():
    first = ScriptedProducer(fail_after=4)
    made: list[ScriptedProducer] = []

    def factory() -> ScriptedProducer:
        made.append(ScriptedProducer())
        return made[-1]

    sink = KafkaSink(first, "k", "k.dlq", producer_factory=factory)
    for i in range(10):  # 4 accepted, then produce() raises _FATAL: the rest wait in the overflow
        sink.publish(b"K", str(i).encode(), "binance", i)
    sink.poll()  # the fatal producer's 4 come back (the first with the broker's error); a new producer takes all
    sink.close()

    assert len(made) == 1 and sink.stats.producer_recycles == 1
    assert made[0].accepted == [str(i).encode() for i in range(10)]  # nothing lost, order kept
    assert sink.stats.acked == 10


@pytest.mark.parametrize("stalled_first", [False, True])
def test_a_fatal_error_raised_from_poll_is_recovered_even_inside_a_stall_replacement(stalled_first):
    """confluent-kafka raises a fatal error from ``poll`` (not via ``error_cb``): while serving reports, or while
    the sink is purging a stalled producer (CI: the stall replacement died there and its purged messages were lost)."""
    first = ScriptedProducer(fail_after=6, first_error=KafkaError.UNKNOWN_PRODUCER_ID, raise_from_poll=True)
    made: list[ScriptedProducer] = []

    def factory() -> ScriptedProducer:
        made.append(ScriptedProducer())
        return made[-1]

    sink = KafkaSink(first, "k", "k.dlq", producer_factory=factory)
    for i in range(10):
        sink.publish(b"K", str(i).encode(), "binance", i)
    if stalled_first:
        sink._recycle()  # what check_stall does once the broker answers again
    sink.poll()
    sink.close()

    assert made and made[-1].accepted == [str(i).encode() for i in range(10)]
    assert sink.stats.acked == 10 and sink.stats.producer_recycles == 1


def test_without_a_factory_a_fatal_producer_stops_the_sink_with_the_reason():
    sink = KafkaSink(ScriptedProducer(fail_after=1), "k", "k.dlq")
    sink.publish(b"K", b"0", "binance", 0)
    sink.publish(b"K", b"1", "binance", 1)

    with pytest.raises(DeliveryError, match="failed for good: .*Fatal error"):
        sink.poll()


def test_producers_that_keep_failing_with_no_acknowledgement_stop_the_sink():
    sink = KafkaSink(ScriptedProducer(fail_after=1), "k", "k.dlq",
                     producer_factory=lambda: ScriptedProducer(fail_after=1, first_error=KafkaError.UNKNOWN_PRODUCER_ID))
    sink.publish(b"K", b"0", "binance", 0)

    with pytest.raises(DeliveryError, match="failed for good"):
        for _ in range(10):
            sink.poll()
    assert sink.stats.producer_recycles == 3


def test_other_delivery_errors_are_still_raised():
    class Refusing(ScriptedProducer):
        def poll(self, _timeout=0):
            served, self.queued = self.queued, []
            for m, cb in served:
                cb(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), Msg(*m))
            return len(served)

    sink = KafkaSink(Refusing(), "k", "k.dlq", producer_factory=ScriptedProducer)
    sink.publish(b"K", b"0", "binance", 0)

    with pytest.raises(DeliveryError, match="delivery failed"):
        sink.poll()
    assert sink.stats.producer_recycles == 0


class Stalled(ScriptedProducer):
    """Takes messages and never delivers them, as an idempotent producer the broker no longer knows;
    its metadata request (the broker is reachable) waits for ``gate``."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def poll(self, _timeout=0):
        if self.fatal_event:
            self.fatal_event = False
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_PRODUCER_ID, "unknown producer id", fatal=True))
        return 0

    def list_topics(self, topic=None, timeout=-1):
        assert self.gate.wait(10)


def test_a_stalled_producer_is_replaced_once_the_broker_answers():
    made: list[ScriptedProducer] = []
    gate = threading.Event()
    gate.set()
    sink = KafkaSink(Stalled(gate), "k", "k.dlq", stall_timeout=0.01,
                     producer_factory=lambda: made.append(ScriptedProducer()) or made[-1])
    for i in range(5):
        sink.publish(b"K", str(i).encode(), "binance", i)

    async def check() -> list[bool]:
        first = await sink.check_stall()  # starts the clock
        await asyncio.sleep(0.05)
        return [first, await sink.check_stall()]

    assert asyncio.run(check()) == [False, True]
    sink.close()
    assert made[0].accepted == [str(i).encode() for i in range(5)] and sink.stats.producer_recycles == 1


def test_a_producer_replaced_while_the_broker_was_asked_is_not_replaced_again():
    made: list[ScriptedProducer] = []
    gate = threading.Event()
    stalled = Stalled(gate)
    sink = KafkaSink(stalled, "k", "k.dlq", stall_timeout=0.01,
                     producer_factory=lambda: made.append(ScriptedProducer()) or made[-1])
    for i in range(5):
        sink.publish(b"K", str(i).encode(), "binance", i)

    async def race() -> bool:
        await sink.check_stall()
        await asyncio.sleep(0.05)
        asking = asyncio.create_task(sink.check_stall())  # waits on the broker in a thread
        await asyncio.sleep(0.05)
        stalled.fatal, stalled.fatal_event = True, True
        sink.poll()  # meanwhile the producer fails for good and is replaced
        gate.set()
        return await asking

    assert asyncio.run(race()) is False
    sink.close()
    assert sink.stats.producer_recycles == 1 and made[0].accepted == [str(i).encode() for i in range(5)]
