"""One Binance market-stream websocket connection: connect, keep alive, watch, reconnect, rotate.

Everything about staying connected lives here (STYLE 4), nothing about what the frames mean:

* URL forms: combined ``/stream?streams=a/b``, raw ``/ws/a/b`` (the original prototype's form), or a bare
  ``/stream`` followed by ``SUBSCRIBE`` frames; ``subscribe``/``unsubscribe`` change the set live. The
  control frames are paced under Binance's 5 incoming messages per second.
* Pings are answered by the ``websockets`` library (same payload, as Binance asks); we send no pings.
* A silence watchdog drops a connection that received nothing for ``silence_timeout`` (time spent
  paused by backpressure does not count).
* Lost connections are re-opened with capped, jittered exponential backoff, reset once a connection
  stayed up ``healthy_after``; every attempt first takes a slot of the shared connection-attempt window
  (300 per 5 minutes).
* Planned replacements (``rotate_after`` before Binance's 24 h cut, or a ``serverShutdown`` event)
  overlap: the new connection is opened and has delivered a frame before the old one is closed.

Frames go to ``handle(frame, received_at_ms)``, which returns ``(Control, obj)`` for control frames.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import websockets
from websockets.asyncio.client import connect as ws_connect

from klinepipe.binance.times import now_ms
from streaming.envelope import Control
from streaming.errors import ControlError
from streaming.limits import SlidingWindow, backoff_delay
from streaming.metrics import Stats

log = logging.getLogger(__name__)

Handler = Callable[[bytes, int], "tuple[Control, dict] | None"]
_FAILURES = (OSError, asyncio.TimeoutError, websockets.WebSocketException)


@dataclass(frozen=True, kw_only=True)
class ConnectionPolicy:
    url_form: str = "combined"  # combined | raw | subscribe
    connect_timeout: float = 5.0
    silence_timeout: float = 15.0
    rotate_after: float = 23.5 * 3600
    overlap_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    healthy_after: float = 60.0
    control_messages_per_second: float = 4.0
    subscribe_batch: int = 100


@dataclass(frozen=True)
class Flow:
    """Backpressure seam: ``congested()`` is checked before every read, ``wait_for_room()`` awaited when true."""

    congested: Callable[[], bool] = lambda: False
    wait_for_room: Callable[[], Awaitable[None]] = lambda: asyncio.sleep(0)


MAX_URL_LENGTH = 8000  # longer request lines are refused by common servers (HTTP 414)


def stream_url(base: str, form: str, streams: list[str]) -> tuple[str, bool]:
    """The websocket URL of a connection carrying ``streams``, and whether they must be SUBSCRIBEd after connecting.

    A stream list too long for a URL falls back to a bare ``/stream`` (``/ws`` for the raw form) + SUBSCRIBE.
    """
    if form == "combined" and streams:
        url = f"{base}/stream?streams={'/'.join(streams)}"
    elif form == "raw" and streams:
        url = f"{base}/ws/{'/'.join(streams)}"
    else:
        return f"{base}/stream", bool(streams)
    if len(url) <= MAX_URL_LENGTH:
        return url, False
    return (f"{base}/ws" if form == "raw" else f"{base}/stream"), True


@dataclass(eq=False)
class _Link:
    ws: object
    opened_at: float
    frames: int = 0
    paused: bool = False
    first_frame: asyncio.Event = field(default_factory=asyncio.Event)
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task] = field(default_factory=list)
    closed: bool = False


class KlineConnection:
    _ids = itertools.count(1)

    def __init__(self, name: str, base_url: str, streams: list[str], policy: ConnectionPolicy, handle: Handler, *,
                 attempts: SlidingWindow, stats: Stats, flow: Flow = Flow(), connector=ws_connect) -> None:
        self.name, self.base_url, self.policy = name, base_url, policy
        self.streams: list[str] = list(dict.fromkeys(streams))
        self._handle, self._attempts, self.stats, self._flow, self._connector = handle, attempts, stats, flow, connector
        self._pacer = SlidingWindow(max(1, int(policy.control_messages_per_second)), 1.0)
        self._pending: dict[int, asyncio.Future] = {}
        self._link: _Link | None = None
        self._attempt = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set."""
        link = await self._open(stop)
        while link is not None and not stop.is_set():
            why = await self._trouble(link, stop)
            if why == "stop":
                break
            if why == "lost":
                self.stats.reconnects += 1
                if time.monotonic() - link.opened_at >= self.policy.healthy_after:
                    self._attempt = 0  # a healthy period resets the backoff
                await self._close(link)
                link = await self._open(stop)
            else:
                self.stats.count(self.stats.rotations, why)
                log.info("%s: replacing the connection (%s), overlapping the old one", self.name, why)
                link = await self._replace(link, stop)
        if link is not None:
            await self._close(link)

    async def subscribe(self, streams: list[str]) -> None:
        new = [s for s in streams if s not in self.streams]
        self.streams.extend(new)  # a reconnect from now on includes them
        if new and self._link is not None:
            await self._request(self._link, "SUBSCRIBE", new)

    async def unsubscribe(self, streams: list[str]) -> None:
        gone = [s for s in streams if s in self.streams]
        self.streams = [s for s in self.streams if s not in gone]
        if gone and self._link is not None:
            await self._request(self._link, "UNSUBSCRIBE", gone)

    async def _open(self, stop: asyncio.Event) -> _Link | None:
        while not stop.is_set():
            await self._attempts.acquire()
            try:
                link = await self._connect()
            except (*_FAILURES, ControlError) as exc:
                delay = backoff_delay(self._attempt, self.policy.backoff_initial, self.policy.backoff_max)
                self._attempt += 1
                self.stats.dependency("binance_ws").failed(exc)  # one warning per outage, not per attempt
                log.debug("%s: connect failed (%s: %s); retrying in %.2fs", self.name, type(exc).__name__, exc, delay)
                if await _wait(stop, delay):
                    return None
                continue
            self.stats.dependency("binance_ws").ok()
            return link
        return None

    async def _connect(self) -> _Link:
        url, subscribe = stream_url(self.base_url, self.policy.url_form, self.streams)
        ws = await self._connector(url, open_timeout=self.policy.connect_timeout, ping_interval=None, close_timeout=2,
                                   max_queue=1024, max_size=2**22, compression=None)
        link = _Link(ws, time.monotonic())
        link.tasks = [asyncio.create_task(self._read(link)), asyncio.create_task(self._watch(link))]
        self.stats.connections += 1
        log.info("%s: connected (%d streams, %s form)", self.name, len(self.streams), self.policy.url_form)
        try:
            if subscribe:
                await self._request(link, "SUBSCRIBE", self.streams)
        except BaseException:
            await self._close(link)
            raise
        self._link = link
        return link

    async def _read(self, link: _Link) -> None:
        recv, handle, flow = link.ws.recv, self._handle, self._flow
        frame = await recv(decode=False)
        link.first_frame.set()
        while True:
            link.frames += 1
            control = handle(frame, now_ms())
            if control is not None:
                self._on_control(link, *control)
            if flow.congested():
                link.paused = True
                await flow.wait_for_room()
                link.paused = False
            frame = await recv(decode=False)

    async def _watch(self, link: _Link) -> None:
        """Silence watchdog: cancel the reader when nothing arrived for ``silence_timeout``."""
        step = min(1.0, self.policy.silence_timeout / 4)
        seen, quiet_since = -1, time.monotonic()
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            if link.frames != seen or link.paused:
                seen, quiet_since = link.frames, now
            elif now - quiet_since >= self.policy.silence_timeout:
                log.warning("%s: no frame for %.1fs; dropping the connection", self.name, now - quiet_since)
                link.tasks[0].cancel()
                return

    def _on_control(self, link: _Link, kind: Control, obj: dict) -> None:
        if kind is Control.SHUTDOWN:
            log.warning("%s: serverShutdown received; moving to a new connection", self.name)
            link.shutdown.set()
            return
        fut = self._pending.pop(obj.get("id"), None)
        if kind is Control.ERROR:
            self.stats.control_errors += 1
            log.error("%s: Binance rejected a control message: %s", self.name, obj.get("error"))
            if fut is not None and not fut.done():
                fut.set_exception(ControlError(str(obj.get("error"))))
        elif fut is not None and not fut.done():
            fut.set_result(obj.get("result"))

    async def _request(self, link: _Link, method: str, streams: list[str]) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE in batches, paced, each awaiting its reply."""
        batch = self.policy.subscribe_batch
        for i in range(0, len(streams), batch):
            ident = next(self._ids)
            fut = self._pending[ident] = asyncio.get_running_loop().create_future()
            await self._pacer.acquire()
            await link.ws.send(json.dumps({"method": method, "params": streams[i:i + batch], "id": ident}))
            try:
                await asyncio.wait_for(fut, self.policy.connect_timeout)
            finally:
                self._pending.pop(ident, None)

    async def _trouble(self, link: _Link, stop: asyncio.Event) -> str:
        """Wait for the first of: reader ended (lost), serverShutdown, rotation age, stop."""
        age_left = link.opened_at + self.policy.rotate_after - time.monotonic()
        waits = {link.tasks[0]: "lost", asyncio.ensure_future(link.shutdown.wait()): "serverShutdown",
                 asyncio.ensure_future(stop.wait()): "stop", asyncio.ensure_future(asyncio.sleep(max(0.0, age_left))): "age"}
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            if task is not link.tasks[0] and not task.done():
                task.cancel()
        reasons = {waits[t] for t in done}
        for why in ("stop", "lost", "serverShutdown", "age"):
            if why in reasons:
                if why == "lost":
                    _log_loss(self.name, link.tasks[0])
                return why
        return "lost"

    async def _replace(self, old: _Link, stop: asyncio.Event) -> _Link | None:
        new = await self._open(stop)  # the old connection keeps reading meanwhile
        if new is not None:
            try:
                await asyncio.wait_for(new.first_frame.wait(), self.policy.overlap_timeout)
            except asyncio.TimeoutError:
                log.warning("%s: new connection silent for %.1fs; closing the old one anyway", self.name,
                            self.policy.overlap_timeout)
        await self._close(old)
        return new

    async def _close(self, link: _Link) -> None:
        if link.closed:
            return
        link.closed = True
        self.stats.connections -= 1
        for task in link.tasks:
            task.cancel()
        if self._link is link:
            self._link = None
        try:
            await link.ws.close()
        except _FAILURES:
            pass


def _log_loss(name: str, reader: asyncio.Task) -> None:
    """Log why the reader ended; re-raise anything that is not a connection failure (e.g. a sink error)."""
    if reader.cancelled():
        return  # the watchdog already said why
    exc = reader.exception()
    if exc is not None and not isinstance(exc, _FAILURES):
        raise exc
    log.warning("%s: connection lost (%s: %s)", name, type(exc).__name__ if exc else "closed", exc)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
        return True
    except asyncio.TimeoutError:
        return False
