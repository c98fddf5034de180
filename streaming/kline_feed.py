"""The live websocket feed: Binance kline streams split across connections, and a probe of the endpoint.

``KlineFeed`` owns the connections (at most ``streams_per_connection`` streams each, the connection
attempts of all of them in one shared window) and lets callers ``subscribe``/``unsubscribe`` live.
"""

from __future__ import annotations

import asyncio

import websockets

from streaming.config import StreamingSettings
from streaming.connection import ConnectionPolicy, Flow, KlineConnection, stream_url
from streaming.limits import SlidingWindow
from streaming.metrics import Stats
from streaming.universe import split_streams


def policy_from(settings: StreamingSettings) -> ConnectionPolicy:
    s = settings
    return ConnectionPolicy(url_form=s.url_form, connect_timeout=s.connect_timeout, silence_timeout=s.silence_timeout,
                            rotate_after=s.rotate_after, overlap_timeout=s.overlap_timeout, backoff_initial=s.backoff_initial,
                            backoff_max=s.backoff_max, healthy_after=s.healthy_after,
                            control_messages_per_second=s.control_messages_per_second, subscribe_batch=s.subscribe_batch)


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


async def probe(base_url: str, streams: list[str], timeout: float) -> str | None:
    """``None`` when the websocket endpoint accepts a connection, else why not."""
    try:
        async with websockets.connect(stream_url(base_url, "combined", streams[:1])[0], open_timeout=timeout, close_timeout=1):
            return None
    except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
        return f"{type(exc).__name__}: {exc}"
