"""Live Binance klines: the streams split across connections, frames through the pipeline, gaps backfilled.

``KlineFeed`` owns the connections (at most ``streams_per_connection`` streams each, the connection
attempts of all of them in one shared window) and lets callers ``subscribe``/``unsubscribe`` live.
``run_live`` wires feed, pipeline, ledger and backfiller around a sink; ``run_record`` writes raw
frames to a JSONL file instead (for ``replay`` later).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import websockets

from streaming.backfill import Backfiller
from streaming.config import StreamingSettings
from streaming.connection import ConnectionPolicy, Flow, KlineConnection, stream_url
from streaming.envelope import control_kind
from streaming.kafka_sink import KafkaSink
from streaming.ledger import ClosedCandleLedger
from streaming.limits import SlidingWindow, backoff_delay
from streaming.metrics import Stats
from streaming.pump import FramePipeline
from streaming.rest import BinanceRest, RestError
from streaming.universe import check_symbols, select_universe, split_streams, stream_names

log = logging.getLogger(__name__)


def policy_from(settings: StreamingSettings) -> ConnectionPolicy:
    s = settings
    return ConnectionPolicy(s.url_form, s.connect_timeout, s.silence_timeout, s.rotate_after, s.overlap_timeout,
                            s.backoff_initial, s.backoff_max, s.healthy_after, s.control_messages_per_second, s.subscribe_batch)


class KlineFeed:
    def __init__(self, base_url: str, policy: ConnectionPolicy, handle, *, stats: Stats, flow: Flow = Flow(),
                 per_connection: int = 1024, attempts: SlidingWindow | None = None) -> None:
        self.base_url, self.policy, self._handle, self.stats, self._flow = base_url, policy, handle, stats, flow
        self.per_connection = per_connection
        self._attempts = attempts or SlidingWindow(300, 300.0)
        self.connections: list[KlineConnection] = []
        self._tasks: list[asyncio.Task] = []
        self._stop: asyncio.Event | None = None

    async def run(self, streams: list[str], stop: asyncio.Event) -> None:
        """Open the connections for ``streams`` and keep them up until ``stop``; a fatal error stops all."""
        self._stop = stop
        for chunk in split_streams(streams, self.per_connection):
            self._start(chunk)
        while not stop.is_set():
            done, _ = await asyncio.wait(self._tasks + [asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task in self._tasks and task.exception() is not None:
                    stop.set()
                    await asyncio.gather(*self._tasks, return_exceptions=True)
                    raise task.exception()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def subscribe(self, streams: list[str]) -> None:
        """Add streams live: into connections with room (SUBSCRIBE), else on new connections."""
        todo = [s for s in streams if not any(s in c.streams for c in self.connections)]
        for conn in self.connections:
            room = self.per_connection - len(conn.streams)
            if todo and room > 0:
                await conn.subscribe(todo[:room])
                todo = todo[room:]
        for chunk in split_streams(todo, self.per_connection):
            self._start(chunk)

    async def unsubscribe(self, streams: list[str]) -> None:
        for conn in self.connections:
            mine = [s for s in streams if s in conn.streams]
            if mine:
                await conn.unsubscribe(mine)

    def _start(self, chunk: list[str]) -> None:
        name = f"conn{len(self.connections) + 1}"
        conn = KlineConnection(name, self.base_url, chunk, self.policy, self._handle, attempts=self._attempts,
                               stats=self.stats, flow=self._flow)
        self.connections.append(conn)
        self._tasks.append(asyncio.create_task(conn.run(self._stop)))


def _count_gap(stats: Stats):
    def on_gap(key: bytes) -> None:
        stats.gaps_unfilled += 1
        log.warning("gap in %s and STREAMING_BACKFILL is off: closed candles are missing from the topic", key.decode())
    return on_gap


async def resolve_symbols_within(rest: BinanceRest, settings: StreamingSettings) -> tuple[str, ...]:
    """``resolve_symbols``, retried quietly with capped backoff while REST is down, for ``startup_timeout`` at
    most; then its ``RestError`` (the caller says so in one line and exits 1)."""
    loop = asyncio.get_running_loop()
    deadline, attempt = loop.time() + settings.startup_timeout, 0
    while True:
        try:
            return await resolve_symbols(rest, settings)
        except RestError:
            left = deadline - loop.time()
            if left <= 0:
                raise
            await asyncio.sleep(min(backoff_delay(attempt, 0.5, 5.0), left))
            attempt += 1


async def resolve_symbols(rest: BinanceRest, settings: StreamingSettings) -> tuple[str, ...]:
    """The symbols to stream: the universe, or the configured list checked against exchangeInfo."""
    if not settings.universe and not settings.check_symbols:
        return settings.symbols
    info = await rest.exchange_info()
    if settings.universe:
        symbols = select_universe(info, settings.universe, settings.universe_limit)
        log.info("universe %s: %d TRADING symbols", settings.universe, len(symbols))
        return symbols
    idle = check_symbols(info, settings.symbols)
    if idle:
        log.warning("symbol(s) %s are not TRADING: their streams will be quiet", ", ".join(idle))
    return settings.symbols


async def poll_forever(sink: KafkaSink, interval: float = 0.005) -> None:
    """Serve delivery reports (and move overflow into the producer) while the loop runs; recover a stall."""
    n = 0
    while True:
        sink.poll()
        n += 1
        if n % 200 == 0:
            await sink.check_stall()
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class LiveParts:
    """What ``run_live`` built, handed to its ``ready`` callback (tests, operators' tooling)."""

    feed: KlineFeed
    ledger: ClosedCandleLedger
    backfiller: Backfiller | None


async def run_live(settings: StreamingSettings, sink: KafkaSink, session: aiohttp.ClientSession, stop: asyncio.Event,
                   *, ready: Callable[[LiveParts], None] | None = None) -> None:
    """Stream ``settings``' klines into ``sink`` until ``stop``; ``ready`` sees the parts once they run (tests)."""
    rest = BinanceRest(session, settings.rest_url)
    symbols = await resolve_symbols_within(rest, settings)
    ledger = ClosedCandleLedger(fill_gaps=settings.backfill)
    pipeline = FramePipeline(sink, "binance", ledger=ledger)
    backfiller = (Backfiller(rest, ledger, sink, pipeline, concurrency=settings.backfill_concurrency)
                  if settings.backfill else None)
    pipeline.on_gap = backfiller.on_gap if backfiller else _count_gap(sink.stats)
    feed = KlineFeed(settings.ws_url, policy_from(settings), pipeline.handle, stats=sink.stats,
                     flow=Flow(lambda: sink.congested, sink.wait_for_room), per_connection=settings.streams_per_connection,
                     attempts=SlidingWindow(settings.connect_attempts_per_5min, 300.0))
    poller = asyncio.create_task(poll_forever(sink))
    poller.add_done_callback(lambda task: _failed(task) and stop.set())
    if ready:
        asyncio.get_running_loop().call_soon(ready, LiveParts(feed, ledger, backfiller))
    try:
        await feed.run(stream_names(symbols, settings.intervals), stop)
        if backfiller:
            await _finish_backfills(backfiller)
    finally:
        poller.cancel()
    if _failed(poller):
        raise poller.exception()  # the sink failed for good (DeliveryError): stop, do not stream into nothing


def _failed(task: asyncio.Task) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


async def _finish_backfills(backfiller: Backfiller, timeout: float = 30.0) -> None:
    """On shutdown, give running backfills ``timeout`` seconds (REST may be down); say so if they did not end."""
    try:
        await asyncio.wait_for(backfiller.idle(), timeout)
    except asyncio.TimeoutError:
        log.error("shutdown: backfills still running after %.0fs; their gaps stay open (the backfill_klines DAG "
                  "fills them from REST)", timeout)


async def run_record(settings: StreamingSettings, out: Path, stop: asyncio.Event, stats: Stats) -> int:
    """Write every raw frame, one a line, to ``out`` until ``stop``; returns the number written."""
    written = 0
    with open(out, "ab") as f:
        def handle(frame: bytes, _at: int):
            nonlocal written
            stats.frames += 1
            f.write(frame.replace(b"\n", b" ") + b"\n")
            written += 1
            return None if b'"kline"' in frame[:40] else control_kind(frame)

        feed = KlineFeed(settings.ws_url, policy_from(settings), handle, stats=stats,
                         per_connection=settings.streams_per_connection)
        await feed.run(stream_names(settings.symbols, settings.intervals), stop)
    return written


async def probe(base_url: str, streams: list[str], timeout: float) -> str | None:
    """``None`` when the websocket endpoint accepts a connection, else why not."""
    try:
        async with websockets.connect(stream_url(base_url, "combined", streams[:1])[0], open_timeout=timeout, close_timeout=1):
            return None
    except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
        return f"{type(exc).__name__}: {exc}"
