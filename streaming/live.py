"""Live Binance kline websockets (combined-stream form), with capped, jittered reconnects.

This is the first cut: one connection for up to ``MAX_STREAMS_PER_CONNECTION`` streams, pings
answered by the ``websockets`` library, a silence watchdog via ``recv`` timeout, and reconnects with
exponential backoff reset after a healthy period.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import websockets

log = logging.getLogger(__name__)

MAX_STREAMS_PER_CONNECTION = 1024
SILENCE_TIMEOUT_S = 60.0


def stream_names(symbols: tuple[str, ...], intervals: tuple[str, ...]) -> list[str]:
    return [f"{s.lower()}@kline_{i}" for s in symbols for i in intervals]


def combined_url(base: str, streams: list[str]) -> str:
    if len(streams) > MAX_STREAMS_PER_CONNECTION:
        raise ValueError(f"{len(streams)} streams exceed Binance's {MAX_STREAMS_PER_CONNECTION} per connection")
    return f"{base.rstrip('/')}/stream?streams={'/'.join(streams)}"


async def probe(url: str, timeout: float) -> str | None:
    """``None`` when the websocket endpoint accepts a connection, else why not."""
    try:
        async with websockets.connect(url, open_timeout=timeout, close_timeout=1):
            return None
    except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
        return f"{type(exc).__name__}: {exc}"


async def stream_frames(url: str, on_frame: Callable[[bytes, int], None], stop: asyncio.Event,
                        *, max_backoff: float = 30.0) -> None:
    """Receive frames until ``stop`` is set, reconnecting on any connection failure."""
    attempt = 0
    while not stop.is_set():
        connected_at = time.monotonic()
        try:
            async with websockets.connect(url, open_timeout=10, ping_interval=None, max_size=2**22) as ws:
                log.info("connected to %s", url)
                while not stop.is_set():
                    frame = await asyncio.wait_for(ws.recv(decode=False), timeout=SILENCE_TIMEOUT_S)
                    on_frame(frame, time.time_ns() // 1_000_000)
        except (OSError, asyncio.TimeoutError, websockets.ConnectionClosed, websockets.InvalidHandshake) as exc:
            if time.monotonic() - connected_at > 60:
                attempt = 0  # a healthy period resets the backoff
            delay = min(max_backoff, 2 ** attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            log.warning("connection lost (%s); reconnecting in %.1fs", exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
