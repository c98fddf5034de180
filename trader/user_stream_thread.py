"""The user data stream inside the trader process: ``UserStream.run`` on a thread and event loop of its own, beside the
synchronous main loop, with its own database connection (``reconnecting``), its fills printed like the loop's
(``announcing``) and its state stored for ``status`` (``recording``). Built by ``trader.wiring.build_user_stream``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from trader import stream_records, timestamps
from trader.orders import Fill, OrderIntent
from trader.trades import Filled
from trader.transaction import Transaction
from trader.user_stream import UserStream


class UserStreamThread:
    def __init__(self, stream: UserStream) -> None:
        self.stream = stream
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="user-stream", daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        await self.stream.run(self._stop)

    def start(self) -> UserStreamThread:
        self._thread.start()
        self._started.wait(30)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Unsubscribe and end the thread (it is a daemon: a stuck one does not keep the process up)."""
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> UserStream:
        self.start()
        return self.stream

    def __exit__(self, *exc) -> None:
        self.stop()


def reconnecting(connect: Callable) -> Callable[[], Transaction]:
    """A transaction factory on one connection of its own, opened again after it died."""
    holder: list = []

    def transaction() -> Transaction:
        if not holder or holder[0].closed:
            holder[:] = [connect()]
        return Transaction(holder[0])

    return transaction


def filled(intent: OrderIntent, fill: Fill) -> Filled:
    return Filled(sleeve=intent.sleeve, side=intent.side, quantity=fill.quantity, price=fill.price, fee=fill.fee,
                  fee_asset=fill.fee_asset, filled_at=timestamps.from_ms(fill.filled_at_ms or intent.open_time_ms),
                  signal_open_time=timestamps.from_ms(intent.open_time_ms))


def announcing(emit: Callable[[str], None]) -> Callable[[OrderIntent, Fill], None]:
    """``on_fill``: the console line the loop prints for a fill it stored, marked as the stream's."""
    return lambda intent, fill: emit(f"{filled(intent, fill).line()} (user data stream)")


def recording(transaction: Callable[[], Transaction]) -> Callable[[UserStream], None]:
    """``on_state``: the stream's state into ``trading.trader_state`` (what ``status`` shows). PostgreSQL away: the
    error ends the session like any gap (resubscribed, caught up)."""
    def record(stream: UserStream) -> None:
        with transaction() as cur:
            stream_records.record_stream_state(cur, stream.mode, stream.connected, stream.subscriptions, stream.applied,
                                               stream.last_event_at, stream.protection_applied)

    return record
