"""Fill gaps over REST: the closed candles a series missed (disconnects, lost closing events).

The ledger reports a gap as an open-time range; ``Backfiller`` fetches it with ``GET /api/v3/klines``,
publishes each candle the topic does not have yet with ``source=gap_fill`` (in open-time order), then
releases the closing frames held meanwhile. One task per series at a time, ``concurrency`` series at
once; REST failures are retried with capped backoff, never given up silently.
"""

from __future__ import annotations

import asyncio
import json
import logging

from klinepipe.binance.intervals import next_open_time
from klinepipe.binance.rows import row_open_time
from klinepipe.binance.times import now_ms
from klinepipe.lineage import GAP_FILL
from streaming.closed_candle_ledger import ClosedCandleLedger
from streaming.kafka_sink import KafkaSink
from streaming.limits import backoff_delay
from streaming.frame_pipeline import FramePipeline
from streaming.replay import RowError, row_to_frame
from streaming.rest import BinanceRest, RestError

log = logging.getLogger(__name__)


class Backfiller:
    def __init__(self, rest: BinanceRest, ledger: ClosedCandleLedger, sink: KafkaSink, pipeline: FramePipeline, *,
                 concurrency: int = 4, missing_retries: int = 3, retry_pause: float = 1.0) -> None:
        self._rest, self._ledger, self._sink, self._pipeline = rest, ledger, sink, pipeline
        self._sem = asyncio.Semaphore(concurrency)
        self._tasks: dict[bytes, asyncio.Task] = {}
        self._missing_retries, self._retry_pause = missing_retries, retry_pause
        self.stats = sink.stats

    def on_gap(self, key: bytes) -> None:
        """Called by the pipeline when a series revealed a gap (a running task picks up later gaps)."""
        if key not in self._tasks:
            self._tasks[key] = asyncio.get_running_loop().create_task(self._run(key))

    async def idle(self) -> None:
        """Wait until no backfill is running (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def _run(self, key: bytes) -> None:
        symbol = key.decode().split(":")[0]
        try:
            async with self._sem:
                while (gap := self._ledger.start_backfill(key)) is not None:
                    interval, start, end = gap
                    rows = await self._fetch(symbol, interval, start, end)
                    await self._publish(key, symbol, interval, rows)
        finally:
            held = self._ledger.finish_backfill(key)
            del self._tasks[key]
        self._pipeline.release(held)

    async def _fetch(self, symbol: str, interval: str, start: int, end: int) -> list[list]:
        expected = _open_times(start, end, interval)
        attempt = misses = 0
        while True:
            try:
                rows = await self._rest.closed_klines(symbol, interval, start, end)
            except RestError as exc:
                self.stats.backfill_errors += 1
                delay = backoff_delay(attempt, 1.0, 60.0)
                attempt += 1
                self.stats.dependency("binance_rest").failed(exc)  # one warning per outage, not per attempt
                log.debug("backfill %s %s [%d, %d) failed (%s); retrying in %.1fs", symbol, interval, start, end, exc, delay)
                await asyncio.sleep(delay)
                continue
            self.stats.dependency("binance_rest").ok()
            missing = len(expected) - len({row_open_time(r) for r in rows} & expected)
            if not missing or misses >= self._missing_retries:
                if missing:
                    log.warning("backfill %s %s: Binance has no data for %d of %d candles in [%d, %d)",
                                symbol, interval, missing, len(expected), start, end)
                return rows
            misses += 1
            await asyncio.sleep(self._retry_pause)  # the newest candle may not be in REST yet

    async def _publish(self, key: bytes, symbol: str, interval: str, rows: list[list]) -> None:
        published = 0
        events = []
        for row in rows:
            try:
                events.append(row_to_frame(row, symbol, interval))
            except RowError as exc:  # not a kline row: to the dead-letter topic with the reason, never dropped
                self._pipeline.reject(_json(row), f"REST kline row of {symbol} {interval}: {exc}", now_ms())
        for open_time, event in sorted(events):
            if not self._ledger.admit_backfilled(key, open_time):
                continue
            if self._sink.congested:
                await self._sink.wait_for_room()
            self._sink.publish(key, event, GAP_FILL, now_ms())
            published += 1
        self.stats.backfilled += published
        if published:
            log.info("backfilled %d closed %s %s candle(s) over REST", published, symbol, interval)


def _open_times(start: int, end: int, interval: str, cap: int = 100_000) -> set[int]:
    out, t = set(), start
    while t < end and len(out) < cap:
        out.add(t)
        t = next_open_time(t, interval)
    return out


def _json(row) -> bytes:
    """A REST row as JSON bytes for the dead-letter topic (stdlib json: any value ``json.loads`` made)."""
    return json.dumps(row).encode("utf-8", "backslashreplace")
