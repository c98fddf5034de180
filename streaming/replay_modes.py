"""The replay and demo modes: recorded klines, or the endless demo market, through the pipeline into the sink.

Synchronous loops (no websocket): each frame is paced, handed to ``FramePipeline``, and the sink is polled;
while the sink is congested the loop waits (backpressure, never drops) and a stalled producer is replaced.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import sys
import time
from typing import Protocol

from klinepipe.binance.times import iso_seconds
from klinepipe.binance.times import now_ms as wall_ms
from streaming.config import StreamingSettings
from streaming.demo_market import DemoClock, DemoSeries, start_point
from streaming.errors import EXIT_SETTINGS, StreamingError
from streaming.frame_pipeline import FramePipeline
from streaming.kafka_sink import KafkaSink
from streaming.replay import ALL_SERIES, frames_after, pace, read_recorded, resume_point, series_from_name


class Stop(Protocol):
    def is_set(self) -> bool: ...

    def sleep(self, seconds: float) -> None: ...  # ends early on a stop (Ctrl-C while a replay waits for its next frame)


def run_replay(settings: StreamingSettings, sink: KafkaSink, stop: Stop) -> None:
    """Replay mode: every file of ``STREAMING_REPLAY_FILES`` at its pace, once or in a loop, until ``stop``."""
    pipeline = FramePipeline(sink, "replay")
    stall = StallCheck(sink)
    after = settings.replay_after
    while True:
        for path in settings.replay_files:
            pace_text = "max speed" if math.isinf(settings.replay_speed) else f"{settings.replay_speed:g}x"
            resume = _resume_text(path, after)
            print(f"streaming: replaying {path} at {pace_text}{resume}", flush=True)
            last_report = time.monotonic()
            for rec in pace(frames_after(read_recorded(path), after), settings.replay_speed, sleep=stop.sleep):
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


class StallCheck:
    """The replay's (synchronous) turn of ``KafkaSink.check_stall``, about once a second: a broker that came back
    without our producer's state (tansu restarted) gets the stalled producer replaced, as in live mode."""

    def __init__(self, sink: KafkaSink, every: float = 1.0) -> None:
        self._sink, self._every, self._next = sink, every, time.monotonic() + every

    def check(self) -> None:
        if time.monotonic() >= self._next:
            asyncio.run(self._sink.check_stall())
            self._next = time.monotonic() + self._every


def run_demo(settings: StreamingSettings, sink: KafkaSink, stop: Stop) -> int:
    """The demo market: every replay file as one endless series on the clock (``streaming/demo_market.py``)."""
    try:
        markets = [DemoSeries.from_file(path) for path in settings.replay_files]
    except (OSError, ValueError, StreamingError) as exc:  # a setting that names files which cannot be a market
        print(f"streaming: cannot build the demo market from STREAMING_REPLAY_FILES: {exc}", file=sys.stderr)
        return EXIT_SETTINGS
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
    last_report, stall = time.monotonic(), StallCheck(sink)
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

