"""Broker stopped for 30 s and restarted: nothing the sidecar received is lost, and memory stays bounded.

tansu keeps messages in memory only, so a restarted broker has lost everything the old one had
acknowledged (a real Kafka cluster keeps it). "Nothing lost" is therefore checked on the new broker:
every candle that closed on the fake market after the broker went down -- received while the producer
could not deliver, or backfilled over REST after the fake dropped the paused reader (the outage lasts 30 s
and at least until that drop) -- must be in the
new broker's topic, contiguous with the older candles that were still unacknowledged when
the broker died (they are re-sent, not lost either). The topic is re-created on the new broker, as a
persistent broker would still have it -- though tansu auto-creates it (with 4 partitions) on the
producer's first metadata request, so the messages queued for partitions 4 and 5 fail and are re-sent
(``redelivered``); their order inside a series can change then, so the check is on the set of candles.
Each is there once, except messages a replaced producer handed back and the sink re-sent
(``recycled_messages``): a batch that was in flight may already have been written, and the loader's
idempotent merge absorbs the repeat.
The new broker does not know the old producer id either: the sink replaces its stalled producer. When
that happens while the new broker is still starting, the new producer can be failed for good by
librdkafka (``_FATAL``, seen once in CI): the sink replaces that one too and re-sends what it held.

Bounded memory: the producer queue is small here (1,000 messages), so the sidecar must pause reading
(backpressure, visible in its metrics) instead of buffering the outage; this process's RSS is sampled
throughout and must grow by less than 100 MB.
"""

from __future__ import annotations

import asyncio
import threading

import psutil
import pytest

from devstack.embedded import free_port, start_broker
from streaming.kafka_topics import ensure_topics
from streaming.live_sidecar import LiveParts
from tests.helpers import read_topic
from tests.live_sidecar import closed_by_series, fakes, live_settings, make_sink, run_sidecar, settle, until

pytestmark = pytest.mark.integration
SERIES = [(s, i) for s in ("BTCUSDT", "ETHUSDT") for i in ("1s", "1m", "5m")]


class RssSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self.done.wait(0.2):
            self.samples.append(me.memory_info().rss)


def test_broker_down_for_30s_loses_nothing_and_keeps_memory_bounded(tmp_path):
    port, topic = free_port(), "klines-broker-down"
    brokers = [start_broker(port, log_path=tmp_path / "tansu1.log")]
    ensure_topics({"bootstrap.servers": brokers[0].bootstrap_servers}, {topic: 6, f"{topic}.dlq": 1})
    rest, ws = fakes(max_unsent_bytes=2**20)  # drops the paused reader after ~1 MB unsent, as Binance drops slow clients
    sink = make_sink(brokers[0].bootstrap_servers, topic, queue_max_messages=1_000)
    closed_at_stop: dict[tuple[str, str], int] = {}
    rss = RssSampler()

    async def outage(parts: LiveParts) -> None:
        await until(lambda: sink.stats.acked > 500)
        rss.start()
        await asyncio.to_thread(brokers[0].stop)
        closed_at_stop.update({s: len(ws.closed(*s)) for s in SERIES})
        await asyncio.sleep(30)
        # and until the fake has cut the paused reader: when that happens depends on how much the kernel's socket
        # buffers absorb first, not on time; the REST bridge is only exercised after it
        await until(lambda: ws.slow_clients_dropped >= 1, timeout=90)
        brokers.append(await asyncio.to_thread(start_broker, port, log_path=tmp_path / "tansu2.log"))
        await asyncio.to_thread(ensure_topics, {"bootstrap.servers": brokers[1].bootstrap_servers}, {topic: 6, f"{topic}.dlq": 1})
        await until(lambda: not sink.congested and sink.stats.backpressure == 0, timeout=60)
        await asyncio.sleep(1.0)
        await settle(parts, ws, SERIES)

    try:
        run_sidecar(live_settings(ws, rest), sink, outage)
        rss.done.set()
        closed, _ = closed_by_series(read_topic(brokers[1].bootstrap_servers, topic))
        truth = {s: ws.closed(*s) for s in SERIES}
    finally:
        ws.stop()
        rest.stop()
        for b in brokers:
            b.stop()
    repeats = 0
    for (symbol, interval), opened in truth.items():
        got = sorted(closed[f"{symbol}:{interval}"])
        repeats += len(got) - len(set(got))
        got = sorted(set(got))
        assert got == opened[opened.index(got[0]):], (symbol, interval)  # contiguous, up to the end
        assert got[0] <= opened[closed_at_stop[(symbol, interval)]], (symbol, interval)  # nothing after the stop missing
    # exactly once, except what a replaced producer handed back and the sink re-sent: a batch it had in flight
    # may already have been written (seen in a run: a second replacement after a fatal error repeated 280)
    assert repeats <= sink.stats.recycled_messages, (repeats, sink.stats.recycled_messages)
    assert sink.stats.backpressure_pauses >= 1 and sink.stats.backpressure == 0 and sink.stats.producer_recycles >= 1
    assert sink.stats.reconnects >= 1 and sink.stats.backfilled > 0  # the outage was also bridged over REST
    assert max(rss.samples) - rss.samples[0] < 100 * 2**20, [s // 2**20 for s in rss.samples[::25]]
