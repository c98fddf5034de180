"""Composition root of the streaming sidecar: ``python -m streaming {auto,live,replay}``.

Reads settings (env ``STREAMING_*``/``KAFKA_*``, overridden by flags), builds the Kafka sink, picks the
source and runs it until it ends or SIGINT/SIGTERM, then flushes every message to the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
import time
from pathlib import Path

from confluent_kafka import Producer

from streaming.config import SettingsError, StreamingSettings, KafkaSettings, load_settings
from streaming.kafka_sink import KafkaSink, ensure_topics
from streaming.live import combined_url, probe, stream_frames, stream_names
from streaming.pump import handle_frame
from streaming.replay import pace, read_recorded

log = logging.getLogger("streaming")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s streaming %(levelname)s %(message)s")
    try:
        settings, kafka = load_settings(
            mode=args.mode, symbols=args.symbols, intervals=args.intervals,
            replay_files=args.file, replay_speed=args.speed, replay_loop=args.loop or None,
        )
    except SettingsError as exc:
        print(f"streaming: {exc}", file=sys.stderr)
        return 2
    ensure_topics(kafka.producer_config(), {kafka.topic: kafka.partitions, kafka.dlq_topic: 1}, kafka.replication_factor)
    sink = KafkaSink(Producer(kafka.producer_config()), kafka.topic, kafka.dlq_topic)
    stop = _install_stop_handlers()
    try:
        mode = settings.mode
        if mode == "auto":
            url = combined_url(settings.ws_url, stream_names(settings.symbols, settings.intervals))
            why = asyncio.run(probe(url, settings.connect_timeout))
            mode = "live" if why is None else "replay"
            if why:
                print(f"streaming: Binance is unreachable ({why}); replaying bundled klines instead", flush=True)
        print(f"streaming: source={mode} topic={kafka.topic} brokers={kafka.bootstrap_servers}", flush=True)
        if mode == "live":
            _run_live(settings, sink, stop)
        else:
            _run_replay(settings, sink, stop)
    finally:
        sink.close()
        print(f"streaming: stopped; published={sink.published} acked={sink.acked} dead_lettered={sink.dead_lettered}", flush=True)
    return 0


def _run_replay(settings: StreamingSettings, sink: KafkaSink, stop) -> None:
    while True:
        for path in settings.replay_files:
            pace_text = "max speed" if math.isinf(settings.replay_speed) else f"{settings.replay_speed:g}x"
            print(f"streaming: replaying {path} at {pace_text}", flush=True)
            last_report = time.monotonic()
            for rec in pace(read_recorded(path), settings.replay_speed):
                if stop.is_set():
                    return
                handle_frame(sink, rec.frame, "replay", time.time_ns() // 1_000_000)
                sink.poll()
                if time.monotonic() - last_report > 10:
                    last_report = time.monotonic()
                    print(f"streaming: published={sink.published} acked={sink.acked}", flush=True)
        if not settings.replay_loop:
            return


def _run_live(settings: StreamingSettings, sink: KafkaSink, stop) -> None:
    url = combined_url(settings.ws_url, stream_names(settings.symbols, settings.intervals))

    async def run() -> None:
        astop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.call_soon(_watch, stop, astop, loop)
        await stream_frames(url, lambda frame, at: (handle_frame(sink, frame, "binance", at), sink.poll()), astop)

    asyncio.run(run())


def _watch(stop, astop: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
    if stop.is_set():
        astop.set()
    else:
        loop.call_later(0.2, _watch, stop, astop, loop)


class _Flag:
    def __init__(self) -> None:
        self._set = False

    def set(self, *_a) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def _install_stop_handlers() -> _Flag:
    flag = _Flag()
    signal.signal(signal.SIGTERM, flag.set)
    signal.signal(signal.SIGINT, flag.set)
    return flag


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m streaming", description="Binance klines -> Kafka (live or replay).")
    p.add_argument("mode", nargs="?", choices=["auto", "live", "replay"], help="auto: live when Binance is reachable, else replay")
    p.add_argument("--symbols", help="comma-separated, e.g. BTCUSDT,ETHUSDT (live)")
    p.add_argument("--intervals", help="comma-separated, e.g. 1m,5m (live)")
    p.add_argument("--file", help="comma-separated CSV (12-column Binance klines) or JSONL files (replay)")
    p.add_argument("--speed", help="replay pace: 60x (60 times real time) or max")
    p.add_argument("--loop", action="store_true", help="replay the files again and again")
    return p


if __name__ == "__main__":
    sys.exit(main())
