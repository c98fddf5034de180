"""The frame pipeline routes klines to the topic, garbage to the dead-letter topic, control frames back; a full
producer keeps the order and signals backpressure."""

from pathlib import Path

from streaming.envelope import Control
from streaming.kafka_sink import KafkaSink
from streaming.frame_pipeline import FramePipeline


CAPTURE = Path(__file__).resolve().parents[2] / "data" / "sample" / "BTCUSDT-kline_5m-ws-20210914.jsonl"


class StubProducer:
    """Accepts ``room`` messages, then raises BufferError like a full librdkafka queue."""

    def __init__(self, room: int) -> None:
        self.room, self.sent = room, []

    def produce(self, topic, value=None, key=None, headers=None, timestamp=0, on_delivery=None):
        if len(self.sent) >= self.room:
            raise BufferError("queue full")
        self.sent.append((topic, key, value, dict(headers)))

    def poll(self, _timeout=0):
        return 0

    def __len__(self):
        return len(self.sent)


def test_pipeline_routes_klines_dead_letters_garbage_and_returns_control_frames():
    producer = StubProducer(room=100)
    sink = KafkaSink(producer, "k", "k.dlq")
    frame = CAPTURE.read_bytes().splitlines()[0]

    results = [FramePipeline(sink, "binance").handle(f, 1) for f in (frame, b"nope", b'{"result":null,"id":7}')]

    assert results[:2] == [None, None] and results[2][0] is Control.REPLY
    assert [(t, k) for t, k, _, _ in producer.sent] == [("k", b"BTCUSDT:5m"), ("k.dlq", None)]
    assert producer.sent[1][3]["error"].startswith(b"not a kline event")
    assert producer.sent[0][3] == {"source": b"binance", "received_at": b"1"}


def test_a_full_producer_keeps_messages_in_order_and_signals_backpressure():
    producer = StubProducer(room=2)
    sink = KafkaSink(producer, "k", "k.dlq", high_water=10)

    for i in range(5):
        sink.publish(b"K", str(i).encode(), "binance", i)
    congested = sink.congested
    producer.room = 10
    sink.poll()

    assert congested and not sink.congested
    assert [v for _, _, v, _ in producer.sent] == [b"0", b"1", b"2", b"3", b"4"]
