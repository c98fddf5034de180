"""Streaming sidecar throughput: fake Binance websocket -> sidecar -> tansu broker, vs the naive prototype path.

The fake stream server (``tests/fake_binance/ws.py``) runs in its own process (so the two sides get
a core each) and pushes ``SYMBOLS x INTERVALS`` kline streams on one combined-stream connection at a
fixed offered rate. Measured in the same run, one after the other, against the same broker:

* sidecar: the real ``run_live`` path (envelope check, closed-candle ledger, forwarded bytes,
  idempotent producer with delivery reports, backpressure); symbol check and REST backfill are off
  (no REST server here, and nothing is missed).
* naive baseline: what the original prototype did per message -- ``json.loads`` the frame, ``json.dumps``
  the event, ``produce`` it (same idempotent producer settings, a delivery callback for the latency).

Figures: frames received per second over the measured window, acknowledged per second, p50/p99
frame-received -> delivery-acknowledged latency (from every acknowledgement; the message timestamp is the
receive time in ms, so latencies carry up to 1 ms of rounding), RSS growth over the window, and the CPU
(in cores) used by the measured process, the fake server and the broker. ``python -m bench streaming`` (``BENCH_SECONDS`` to
shorten the 60 s window).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import time
from array import array

import psutil
from confluent_kafka import Producer

from devstack.embedded import free_port, start_broker
from streaming.config import KafkaSettings, StreamingSettings
from streaming.kafka_sink import build_sink
from streaming.kafka_topics import ensure_topics
from streaming.live_sidecar import LiveParts, run_live
from streaming.metrics import Stats
from streaming.universe import stream_names

SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
WARMUP = 5.0
SYMBOLS = tuple(f"S{i:03d}USDT" for i in range(250))
INTERVALS = ("1s", "1m")
TICK, STEP_MS = 0.005, 200  # 200 pushes/s of 500 streams + 250 1s closes every 5th tick = 110,000 frames/s offered


class _RawLatency(Stats):
    """Stats that also count every latency in 0.1 ms steps (bench only; allocated up front, so RSS stays honest)."""

    STEPS = 600_000  # 0.1 ms steps up to 60 s

    def __init__(self) -> None:
        super().__init__()
        self.raw = array("L", [0]) * (self.STEPS + 1)
        self.recording = False

    def observe_latency_ms(self, ms: float) -> None:
        super().observe_latency_ms(ms)
        if self.recording:
            self.raw[min(self.STEPS, max(0, int(ms * 10)))] += 1


def _serve(port: int) -> None:
    from tests.fake_binance.ws import serve_streams

    # never drop a slow reader here: the naive baseline reads ~35-50k of the ~100k frames/s offered, and its backlog
    # (up to ~2 GB over the window) passed 1 GB on a slower machine, which aborted its connection mid-run
    asyncio.run(serve_streams("127.0.0.1", port, step_ms=STEP_MS, tick=TICK, max_unsent_bytes=1 << 34, ping_interval=None))


PEERS: dict[str, psutil.Process] = {}  # the fake server and the broker, for their CPU use


async def _measure(stats: _RawLatency, acked, stop: asyncio.Event) -> dict:
    proc = psutil.Process()
    await asyncio.sleep(WARMUP)
    cpu0 = {name: p.cpu_times() for name, p in {"self": proc, **PEERS}.items()}
    f0, a0, rss0, t0 = stats.frames, acked(), proc.memory_info().rss, time.monotonic()
    stats.recording, rss_max = True, rss0
    while time.monotonic() - t0 < SECONDS:
        await asyncio.sleep(1.0)
        rss_max = max(rss_max, proc.memory_info().rss)
    dt = time.monotonic() - t0
    stats.recording = False
    out = {"frames_per_s": (stats.frames - f0) / dt, "acked_per_s": (acked() - a0) / dt,
           "rss_growth_mb": (rss_max - rss0) / 2**20}
    out["cpu"] = {name: (sum(p.cpu_times()[:2]) - sum(cpu0[name][:2])) / dt
                  for name, p in {"self": proc, **PEERS}.items()}
    stop.set()
    return out


def _run_sidecar(ws_url: str, bootstrap: str, topic: str) -> dict:
    settings = StreamingSettings(mode="live", symbols=SYMBOLS, intervals=INTERVALS, ws_url=ws_url, check_symbols=False,
                                 backfill=False, metrics_port=0, silence_timeout=30)
    stats = _RawLatency()
    sink = build_sink(KafkaSettings(bootstrap_servers=bootstrap, topic=topic, dlq_topic=f"{topic}.dlq"), stats)

    async def main() -> dict:
        import aiohttp

        stop, ready = asyncio.Event(), asyncio.get_running_loop().create_future()
        async with aiohttp.ClientSession() as session:
            task = asyncio.create_task(run_live(settings, sink, session, stop, ready=ready.set_result))
            parts: LiveParts = await ready
            result = await _measure(stats, lambda: stats.acked, stop)
            await task
        result["duplicates"] = parts.ledger is not None and stats.duplicates
        return result

    result = asyncio.run(main())
    sink.close()
    return {**result, **_percentiles(stats.raw)}


def _run_naive(ws_url: str, bootstrap: str, topic: str) -> dict:
    """The original prototype's loop: decode, re-encode, produce, one message at a time."""
    import websockets

    cfg = KafkaSettings(bootstrap_servers=bootstrap, topic=topic).producer_config()
    producer, stats = Producer(cfg), _RawLatency()

    def on_delivery(err, msg) -> None:
        if err is None:
            stats.acked += 1
            stats.observe_latency_ms(time.time() * 1000 - msg.timestamp()[1])

    async def main() -> dict:
        stop = asyncio.Event()
        async with websockets.connect(f"{ws_url}/stream", ping_interval=None, max_size=2**22, compression=None) as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": stream_names(SYMBOLS, INTERVALS), "id": 1}))
            measure = asyncio.create_task(_measure(stats, lambda: stats.acked, stop))
            while not stop.is_set():
                msg = json.loads(await ws.recv())
                stats.frames += 1
                if "data" not in msg:
                    continue  # the SUBSCRIBE reply
                data = msg["data"]
                producer.produce(topic, json.dumps(data).encode(), f"{data['s']}:{data['k']['i']}".encode(),
                                 headers=[("source", b"binance"), ("received_at", str(int(time.time() * 1000)).encode())],
                                 on_delivery=on_delivery)
                producer.poll(0)
            return await measure

    result = asyncio.run(main())
    producer.flush(60)
    return {**result, **_percentiles(stats.raw)}


def _percentiles(counts: array) -> dict:
    total, out, running = sum(counts), {}, 0
    targets = {"p50_ms": 0.50 * total, "p99_ms": 0.99 * total}
    for step, n in enumerate(counts):
        running += n
        for name, target in targets.items():
            if name not in out and total and running >= target:
                out[name] = step / 10
    return {name: out.get(name, float("nan")) for name in targets}


def main() -> int:
    broker = start_broker()
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,), daemon=True)
    server.start()
    PEERS.update(server=psutil.Process(server.pid), broker=psutil.Process(broker.process.pid))
    time.sleep(2.0)
    ws_url = f"ws://127.0.0.1:{port}"
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average before the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"offered ~{len(SYMBOLS) * len(INTERVALS) / TICK:,.0f} update frames/s + 1s closes; window {SECONDS:g}s", flush=True)
    try:
        results = {}
        for name, run in (("sidecar", _run_sidecar), ("naive", _run_naive)):
            topic = f"bench-{name}-{int(time.time())}"
            ensure_topics({"bootstrap.servers": broker.bootstrap_servers}, {topic: 6, f"{topic}.dlq": 1})
            results[name] = run(ws_url, broker.bootstrap_servers, topic)
            r = results[name]
            print(f"{name:8s} received {r['frames_per_s']:>9,.0f} frames/s  acked {r['acked_per_s']:>9,.0f} msgs/s  "
                  f"latency p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  RSS growth {r['rss_growth_mb']:.1f} MB  "
                  f"CPU (cores) {name} {r['cpu']['self']:.2f} fake-server {r['cpu']['server']:.2f} "
                  f"broker {r['cpu']['broker']:.2f}",
                  flush=True)
        s, n = results["sidecar"], results["naive"]
        print(f"ratio sidecar/naive: throughput x{s['acked_per_s'] / max(n['acked_per_s'], 1):.2f}, "
              f"p99 latency x{s['p99_ms'] / max(n['p99_ms'], 1e-9):.2f}", flush=True)
        ok = s["frames_per_s"] >= 50_000 and s["rss_growth_mb"] < 50
        print(f"target (>= 50,000 frames/s sustained, RSS growth < 50 MB): {'met' if ok else 'NOT met'}", flush=True)
        return 0
    finally:
        server.terminate()
        server.join(10)
        broker.stop()
