"""The live sidecar's wiring: feed -> pipeline -> sink, with the ledger and the REST gap fill around it.

``run_live`` resolves the symbols, builds ledger, pipeline, backfiller and feed around a sink, serves the
sink's delivery reports, and runs until ``stop`` (or until the sink failed for good).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from streaming.backfill import Backfiller
from streaming.closed_candle_ledger import ClosedCandleLedger
from streaming.config import StreamingSettings
from streaming.connection import Flow
from streaming.frame_pipeline import FramePipeline
from streaming.kafka_sink import KafkaSink
from streaming.kline_feed import KlineFeed, policy_from
from streaming.limits import SlidingWindow, backoff_delay
from streaming.metrics import Stats
from streaming.rest import BinanceRest, RestError
from streaming.universe import check_symbols, select_universe, stream_names

log = logging.getLogger(__name__)


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
