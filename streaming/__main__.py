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
import logging
import signal
import sys
import time

import aiohttp

from klinepipe import connection_file, logging_setup
from streaming.config import KafkaSettings, StreamingSettings, check_record_out, check_replay_files, load_settings
from streaming.errors import BrokerUnreachable, DeliveryError, RestError, SettingsError, exit_code
from streaming.kafka_client import check_client_config
from streaming.kafka_sink import KafkaSink, build_sink
from streaming.kafka_topics import ensure_topics
from streaming.kline_feed import probe
from streaming.live_sidecar import run_live
from streaming.metrics import Stats, serve_metrics
from streaming.record import run_record
from streaming.replay_modes import run_demo, run_replay
from streaming.universe import stream_names

log = logging.getLogger("streaming")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging_setup.configure("streaming")  # UTC time and level on every line
    connection_file.fill_unset(("KAFKA_BOOTSTRAP_SERVERS",), "streaming")  # the running make-run stack's broker
    try:
        settings, kafka = _checked_settings(args)
    except SettingsError as exc:
        print(f"streaming: {exc}", file=sys.stderr)
        return exit_code(exc)
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
        return exit_code(exc)
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
    except (SettingsError, DeliveryError) as exc:  # DeliveryError: refused for good; stop, the supervisor restarts us
        print(f"streaming: {exc}", file=sys.stderr)
        code = exit_code(exc)
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
        run_replay(settings, sink, stop)
        return 0
    if mode == "demo":
        return run_demo(settings, sink, stop)
    try:
        asyncio.run(_live(settings, sink, stop))  # unknown symbols: SettingsError, reported by main
    except RestError as exc:
        print(f"streaming: cannot read exchangeInfo from BINANCE_REST_URL={settings.rest_url} within "
              f"{settings.startup_timeout:g}s (STREAMING_STARTUP_TIMEOUT; {exc}); "
              "set STREAMING_CHECK_SYMBOLS=false to start without the check", file=sys.stderr)
        return exit_code(exc)
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

    def sleep(self, seconds: float) -> None:
        """``time.sleep`` that a stop ends: short naps (a signal does not end ``time.sleep``, PEP 475), so Ctrl-C
        while a paced replay waits for its next frame (a minute for 1h candles at 60x) is answered at once."""
        end = time.monotonic() + seconds
        while not self._set and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.2))


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
