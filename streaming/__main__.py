"""Composition root of the streaming sidecar: ``python -m streaming {auto,live,demo,replay,record}``.

Reads settings (env ``STREAMING_*``/``KAFKA_*``, overridden by flags; a bad one fails here, named),
builds the producer, sink and metrics endpoint, picks the source and runs it until it ends or
SIGINT/SIGTERM, then flushes every message to the broker.

    python -m streaming live --symbols BTCUSDT,ETHUSDT --intervals 1m,5m
    python -m streaming live --universe USDT --intervals 1m
    python -m streaming replay --file data/sample/BTCUSDT-1m.csv.gz --speed 60x
    python -m streaming demo --speed 10x     # the bundled candles looped on the present's clock
    python -m streaming record --symbols BTCUSDT --intervals 1s --out btc.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import logging
import math
import signal
import sys
import time

import aiohttp
from confluent_kafka import KafkaException

from klinepipe import connection_file, logging_setup
from klinepipe.binance.times import iso_seconds
from klinepipe.binance.times import now_ms as wall_ms
from streaming.config import (KafkaSettings, SettingsError, StreamingSettings, check_record_out, check_replay_files,
                              load_settings)
from streaming.kafka_sink import (BrokerUnreachable, ClientConfigError, DeliveryError, KafkaSink, build_sink,
                                  check_client_config, ensure_topics)
from streaming.demo_market import DemoClock, DemoSeries, start_point
from streaming.live import probe, run_live, run_record
from streaming.metrics import Stats, serve_metrics
from streaming.pump import FramePipeline
from streaming.replay import ALL_SERIES, frames_after, pace, read_recorded, resume_point, series_from_name
from streaming.rest import RestError
from streaming.universe import UnknownSymbolsError, stream_names

log = logging.getLogger("streaming")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging_setup.configure("streaming")  # UTC time and level on every line
    connection_file.fill_unset(("KAFKA_BOOTSTRAP_SERVERS",), "streaming")  # the running make-run stack's broker
    try:
        settings, kafka = _checked_settings(args)
    except (SettingsError, ClientConfigError) as exc:
        print(f"streaming: {exc}", file=sys.stderr)
        return 2
    stop = _Stop()
    if settings.mode == "record":
        return _record(settings, stop)
    stats = Stats()
    try:
        ensure_topics(kafka.producer_config(), {kafka.topic: kafka.partitions, kafka.dlq_topic: 1}, kafka.replication_factor,
                      timeout=settings.startup_timeout)
    except BrokerUnreachable as exc:
        print(f"streaming: {exc}; start make run (its broker is found through {connection_file.path()}) or set"
              " KAFKA_BOOTSTRAP_SERVERS (STREAMING_STARTUP_TIMEOUT waits longer)", file=sys.stderr)
        return 1
    sink = build_sink(kafka, stats)
    try:
        if settings.metrics_port:
            serve_metrics(stats, lambda: sink.queue_depth, settings.metrics_port, str(settings.metrics_host))
    except OSError as exc:  # a busy port must not stop the data; say so loudly instead
        log.error("no /metrics: cannot listen on STREAMING_METRICS_PORT=%d (%s); choose a free port, or 0 for none",
                  settings.metrics_port, exc)
    code = 1
    try:
        code = _run(settings, kafka, sink, stop)
    except SettingsError as exc:
        print(f"streaming: {exc}", file=sys.stderr)
        code = 2
    except DeliveryError as exc:  # the broker refuses our messages for good: stop, the supervisor restarts us
        print(f"streaming: {exc}", file=sys.stderr)
    finally:
        code = _close(sink, code)
    return code


def _checked_settings(args) -> tuple[StreamingSettings, KafkaSettings]:
    """The settings, checked as far as possible without reaching a dependency (files, librdkafka's config)."""
    settings, kafka = load_settings(**_overrides(args))
    if settings.mode == "record":
        check_record_out(settings.record_out)
        return settings, kafka
    if settings.mode == "replay":
        check_replay_files(settings.replay_files)
    check_client_config(kafka)
    return settings, kafka


def _close(sink: KafkaSink, code: int) -> int:
    try:
        sink.close()
    except DeliveryError as exc:
        print(f"streaming: {exc}", file=sys.stderr)
        code = code or 1
    print(f"streaming: stopped; published={sink.published} acked={sink.acked} dead_lettered={sink.dead_lettered}", flush=True)
    return code


def _run(settings: StreamingSettings, kafka: KafkaSettings, sink: KafkaSink, stop: _Stop) -> int:
    mode = settings.mode
    if mode == "auto":
        why = asyncio.run(probe(settings.ws_url, stream_names(settings.symbols, settings.intervals), settings.connect_timeout))
        mode = "live" if why is None else "demo"
        if why:
            check_replay_files(settings.replay_files)
            print(f"streaming: Binance is unreachable ({why}); streaming the demo market instead", flush=True)
    print(f"streaming: source={mode} topic={kafka.topic} brokers={kafka.bootstrap_servers}", flush=True)
    if mode == "replay":
        _run_replay(settings, sink, stop)
        return 0
    if mode == "demo":
        return _run_demo(settings, sink, stop)
    try:
        asyncio.run(_live(settings, sink, stop))
    except UnknownSymbolsError as exc:
        print(f"streaming: {exc}", file=sys.stderr)
        return 2
    except RestError as exc:
        print(f"streaming: cannot read exchangeInfo from STREAMING_REST_URL={settings.rest_url} within "
              f"{settings.startup_timeout:g}s (STREAMING_STARTUP_TIMEOUT; {exc}); "
              "set STREAMING_CHECK_SYMBOLS=false to start without the check", file=sys.stderr)
        return 1
    return 0


async def _live(settings: StreamingSettings, sink: KafkaSink, stop: _Stop) -> None:
    astop = stop.bind(asyncio.get_running_loop())
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await run_live(settings, sink, session, astop)


def _record(settings: StreamingSettings, stop: _Stop) -> int:
    async def go() -> int:
        return await run_record(settings, settings.record_out, stop.bind(asyncio.get_running_loop()), Stats())

    n = asyncio.run(go())
    print(f"streaming: recorded {n} frames to {settings.record_out}", flush=True)
    return 0


def _run_replay(settings: StreamingSettings, sink: KafkaSink, stop: _Stop) -> None:
    pipeline = FramePipeline(sink, "replay")
    stall = _StallCheck(sink)
    after = settings.replay_after
    while True:
        for path in settings.replay_files:
            pace_text = "max speed" if math.isinf(settings.replay_speed) else f"{settings.replay_speed:g}x"
            resume = _resume_text(path, after)
            print(f"streaming: replaying {path} at {pace_text}{resume}", flush=True)
            last_report = time.monotonic()
            for rec in pace(frames_after(read_recorded(path), after), settings.replay_speed):
                if stop.is_set():
                    return
                if rec.error is None:
                    pipeline.handle(rec.frame, wall_ms())
                else:
                    pipeline.reject(rec.frame, rec.error, wall_ms())
                sink.poll()
                stall.check()
                while sink.congested:  # backpressure: wait for the broker, never drop
                    time.sleep(0.01)
                    sink.poll()
                    stall.check()
                if time.monotonic() - last_report > 10:
                    last_report = time.monotonic()
                    print(f"streaming: published={sink.published} acked={sink.acked}", flush=True)
        if not settings.replay_loop:
            if sink.published == 0 and after is not None:
                print(f"streaming: nothing to replay after {_points_text(after)}; STREAMING_REPLAY_AFTER=0 replays from"
                      " the start", flush=True)
            return
        after = None  # later passes replay everything again


class _StallCheck:
    """The replay's (synchronous) turn of ``KafkaSink.check_stall``, about once a second: a broker that came back
    without our producer's state (tansu restarted) gets the stalled producer replaced, as in live mode."""

    def __init__(self, sink: KafkaSink, every: float = 1.0) -> None:
        self._sink, self._every, self._next = sink, every, time.monotonic() + every

    def check(self) -> None:
        if time.monotonic() >= self._next:
            asyncio.run(self._sink.check_stall())
            self._next = time.monotonic() + self._every


def _run_demo(settings: StreamingSettings, sink: KafkaSink, stop: _Stop) -> int:
    """The demo market: every replay file as one endless series on the clock (``streaming/demo_market.py``)."""
    try:
        markets = [DemoSeries.from_file(path) for path in settings.replay_files]
    except (OSError, ValueError) as exc:
        print(f"streaming: cannot build the demo market from STREAMING_REPLAY_FILES: {exc}", file=sys.stderr)
        return 2
    wall = time.time()
    now_ms = int(wall * 1000)
    starts = {}
    for path, m in zip(settings.replay_files, markets):
        starts[m.series], why = start_point(m, resume_point(settings.replay_after, m.series), now_ms, settings.demo_history)
        print(f"streaming: DEMO MARKET {m.symbol} {m.interval}, not live prices: the {len(m.rows)} real candles of"
              f" {path.name} replayed in a loop with their times shifted to the present (every other lap backwards);"
              f" {why}, {iso_seconds(starts[m.series])}", flush=True)
    clock = DemoClock(max([now_ms, *starts.values()]), settings.demo_speed, wall)
    print(f"streaming: demo market clock at {settings.demo_speed:g}x the wall clock from {iso_seconds(clock.start_ms)}"
          f" (epoch ms {clock.start_ms}){'' if settings.demo_speed == 1 else '; its candle times run ahead of yours'}",
          flush=True)
    pipeline = FramePipeline(sink, "replay")
    due = []  # (close time, series index, candle, the series' candles): the next candle of each series, soonest first
    for i, m in enumerate(markets):
        candles = m.candles(starts[m.series])
        first = next(candles)
        due.append((first.close_ms, i, first, candles))
    heapq.heapify(due)
    last_report, stall = time.monotonic(), _StallCheck(sink)
    while not stop.is_set():
        stall.check()  # a restarted broker without our producer's state: replace the stalled producer
        close_ms, i, candle, candles = due[0]
        wait = clock.wall_at(close_ms) - time.time()
        if wait > 0:
            sink.poll()
            time.sleep(min(wait, 0.5))  # short naps: a stop is answered at once
            continue
        pipeline.handle(candle.frame, wall_ms())
        sink.poll()
        while sink.congested and not stop.is_set():  # backpressure: wait for the broker, never drop
            time.sleep(0.01)
            sink.poll()
        following = next(candles)
        heapq.heapreplace(due, (following.close_ms, i, following, candles))
        if time.monotonic() - last_report > 60:
            last_report = time.monotonic()
            print(f"streaming: demo market at {iso_seconds(close_ms)}; published={sink.published}"
                  f" acked={sink.acked}", flush=True)
    return 0


def _resume_text(path, after) -> str:
    """``, resuming after <time> (STREAMING_REPLAY_AFTER)`` for the file's series ("" when it starts at the top)."""
    if after is None:
        return ""
    try:
        at = resume_point(after, ":".join(series_from_name(path)))
    except ValueError:  # a JSONL recording may hold several series: each resumes at its own point
        return f", resuming each series after its own point: {_points_text(after)} (STREAMING_REPLAY_AFTER)"
    return "" if at is None else f", resuming after {iso_seconds(at)} (STREAMING_REPLAY_AFTER)"


def _points_text(after) -> str:
    if isinstance(after, int):
        return iso_seconds(after)
    return ", ".join(f"{'every other series' if k == ALL_SERIES else k} {iso_seconds(v)}" for k, v in after.items())


class _Stop:
    """SIGINT/SIGTERM -> a flag (sync loops) and an asyncio.Event (the live loop)."""

    def __init__(self) -> None:
        self._set = False
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, *_a) -> None:
        self._set = True
        if self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    def bind(self, loop: asyncio.AbstractEventLoop) -> asyncio.Event:
        self._event, self._loop = asyncio.Event(), loop
        if self._set:
            self._event.set()
        return self._event

    def is_set(self) -> bool:
        return self._set


def _overrides(args) -> dict:
    return {"mode": args.mode, "symbols": args.symbols, "intervals": args.intervals, "universe": args.universe,
            "ws_url": args.ws_url, "rest_url": args.rest_url, "url_form": args.url_form, "replay_files": args.file,
            "replay_speed": args.speed if args.mode != "demo" else None,
            "demo_speed": args.speed if args.mode == "demo" else None, "replay_loop": args.loop or None, "replay_after": args.after, "record_out": args.out,
            "metrics_port": args.metrics_port}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m streaming", description="Binance klines -> Kafka (live, replay or record).")
    p.add_argument("mode", nargs="?", choices=["auto", "live", "demo", "replay", "record"],
                   help="auto: live when Binance is reachable, else the demo market (the bundled candles looped on"
                        " the present's clock); replay: the files' own times, once; record: raw frames to --out")
    p.add_argument("--symbols", help="comma-separated, e.g. BTCUSDT,ETHUSDT (live, record)")
    p.add_argument("--universe", help="quote asset: every TRADING symbol quoted in it, e.g. USDT (replaces --symbols)")
    p.add_argument("--intervals", help="comma-separated, e.g. 1m,5m (live, record)")
    p.add_argument("--ws-url", help="market streams base, e.g. wss://stream.binance.com:9443")
    p.add_argument("--rest-url", help="REST base for exchangeInfo and backfills, e.g. https://api.binance.com")
    p.add_argument("--url-form", choices=["combined", "raw", "subscribe"], help="/stream?streams=, /ws/a/b, or SUBSCRIBE")
    p.add_argument("--file", help="comma-separated CSV (12-column Binance klines) or JSONL files (replay)")
    p.add_argument("--speed", help="replay pace: 60x (60 times real time) or max; demo: its clock's pace, e.g. 10x")
    p.add_argument("--loop", action="store_true", help="replay the files again and again")
    p.add_argument("--after", help="replay: skip frames up to this time (epoch ms or ISO 8601), e.g. what is stored already")
    p.add_argument("--out", help="JSONL file the raw frames are appended to (record)")
    p.add_argument("--metrics-port", type=int, help="port of /metrics (0: off)")
    return p


if __name__ == "__main__":
    sys.exit(main())
