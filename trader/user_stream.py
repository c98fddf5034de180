"""Fills from the Binance user data stream into the ledger (binance-protective-orders.md 4).

``UserStream.run`` subscribes over the WebSocket API with python-binance (``BinanceSocketManager.user_socket``, which
sends ``userDataStream.subscribe.signature``; listenKeys are gone since 2026-02-20) and applies every
``executionReport`` with ``x=TRADE`` of an order the ledger has open, in one transaction, through
``order_records.apply_report`` -- idempotent per (client order id, trade id), so a fill seen on the stream and again
over REST moves a position once. ``z`` is not trusted alone: the report carries every stored fill of the order plus
the new one, so the executed quantity is the sum of the fills.

REST stays the source of truth. After every (re)subscription -- at start, after a dropped connection, an
``eventStreamTerminated`` or a ``serverShutdown`` -- ``catch_up`` runs (``refresh_open_orders``: each accepted open
order looked up by client order id, its fills applied; orders still ``PENDING_SUBMIT`` are the main loop's to send),
*after* the new subscription is active, so no event can fall in a gap. Balance events are not applied: the ledger's balances move with its fills, and the exchange's balances are
compared at reconciliation; a ``balanceUpdate`` (deposit, withdrawal) is recorded as an event for the operator.
Resubscribing waits ``retry_wait`` seconds, doubling up to ``max_wait`` while subscribing keeps failing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from trader import order_records
from trader.orders import Fill, OrderIntent, OrderReport
from trader.sleeve_records import record_event
from trader.timestamps import to_ms

log = logging.getLogger(__name__)
STATE_EVERY_S = 5.0
GAP_EVENTS = ("error", "eventStreamTerminated", "serverShutdown")  # python-binance reports a lost connection as e=error


def parse_trade(event: dict) -> tuple[str, Fill, str, str] | None:
    """(client order id, fill, order status, exchange order id) of an ``executionReport`` trade, else ``None``.

    Sample (reference 4.4): ``{"e":"executionReport","c":"kp-m-1","x":"TRADE","X":"FILLED","i":32,"l":"2.0","L":"1.0",
    "n":"0.001","N":"BNB","T":1719467634105,"t":7,...}``."""
    if event.get("e") != "executionReport" or event.get("x") != "TRADE":
        return None
    fill = Fill(trade_id=str(event["t"]), quantity=Decimal(event["l"]), price=Decimal(event["L"]), fee=Decimal(event["n"]),
                fee_asset=event["N"] or "", filled_at_ms=int(event["T"]))
    return event["c"], fill, event["X"], str(event["i"])


def _stored_fills(cur, client_order_id: str) -> list[Fill]:
    cur.execute("SELECT trade_id, quantity, price, fee, fee_asset, filled_at FROM trading.fills WHERE client_order_id = %s"
                " ORDER BY id", (client_order_id,))
    return [Fill(trade_id=t, quantity=q, price=p, fee=f, fee_asset=a, filled_at_ms=to_ms(at)) for t, q, p, f, a, at in cur.fetchall()]


def refresh_open_orders(executor, transaction: Callable) -> None:
    """The REST catch-up: look up every accepted open order of the executor's mode and apply what the venue says."""
    with transaction() as cur:
        pending = order_records.open_orders(cur, executor.broker.mode)
    for intent, status, _ in pending:
        if status != "PENDING_SUBMIT":
            executor.refresh(intent)


class UserStream:
    def __init__(self, client_factory: Callable[[], Awaitable], transaction: Callable, mode: str, catch_up: Callable[[], None],
                 *, retry_wait: float = 1.0, max_wait: float = 30.0,
                 on_fill: Callable[[OrderIntent, Fill], None] = lambda intent, fill: None,
                 on_state: Callable[["UserStream"], None] = lambda stream: None, clock: Callable[[], float] = time.time) -> None:
        self._client_factory, self._tx, self.mode, self._catch_up = client_factory, transaction, mode, catch_up
        self.retry_wait, self.max_wait = retry_wait, max_wait
        self._on_fill, self._on_state, self._clock = on_fill, on_state, clock  # on_state: after (un)subscribing; own thread
        self.connected = False  # subscribed now
        self.last_event_at: float | None = None  # epoch s of the newest event received (any type)
        self.state_every = STATE_EVERY_S  # on_state after a fill, and after other events at most this often
        self._state_told = 0.0
        self.subscriptions = 0  # how many times a subscription was made (1 + resubscriptions)
        self.catch_ups = 0  # REST catch-ups finished (one after each subscription)
        self.applied = 0  # fills new to the ledger that came from the stream

    def apply(self, event: dict) -> bool:
        """Apply one event; ``True`` when it stored a fill the ledger did not have."""
        if event.get("e") == "balanceUpdate":
            with self._tx() as cur:
                record_event(cur, self.mode, "balance_update", f"{event['a']} {event['d']} (user data stream)")
            return False
        trade = parse_trade(event)
        if trade is None:
            return False
        cid, fill, status, exchange_id = trade
        with self._tx() as cur:
            intent = next((i for i, _, _ in order_records.open_orders(cur, self.mode) if i.client_order_id == cid), None)
            if intent is None:  # not ours, or final already: reconciliation sees foreign trades
                return False
            fills = [f for f in _stored_fills(cur, cid) if f.trade_id != fill.trade_id] + [fill]
            report = OrderReport(client_order_id=cid, status=status, exchange_order_id=exchange_id,
                                 executed_qty=sum((f.quantity for f in fills), Decimal(0)), fills=tuple(fills))
            new = order_records.apply_report(cur, self.mode, intent, report)
        self.applied += len(new)
        for stored in new:
            self._on_fill(intent, stored)
        return bool(new)

    async def run(self, stop: asyncio.Event) -> None:
        """Subscribe, catch up, apply events; resubscribe after any gap; until ``stop`` is set.

        One python-binance client serves every subscription (its WebSocket API connection reconnects by itself after
        a drop); a client that fails to subscribe is closed and a new one made."""
        wait, client = self.retry_wait, None
        try:
            while not stop.is_set():
                try:
                    client = client or await self._client_factory()
                    await self._session(client, stop)
                    wait = self.retry_wait
                except Exception as exc:  # noqa: BLE001 - any failure is a gap: logged, then resubscribe and catch up
                    log.warning("user data stream: %s; resubscribing in %.1fs", type(exc).__name__, wait)
                    await _close_client(client)
                    client = None
                    await _sleep_or_stop(stop, wait)
                    wait = min(wait * 2, self.max_wait)
        finally:
            await _close_client(client)

    async def _session(self, client, stop: asyncio.Event) -> None:
        from binance import BinanceSocketManager

        socket = BinanceSocketManager(client).user_socket()
        try:
            await socket.__aenter__()  # userDataStream.subscribe.signature
            self.subscriptions += 1
            self.connected = True
            await self._tell_state()
            await asyncio.to_thread(self._catch_up)  # REST after subscribing: nothing falls in a gap
            self.catch_ups += 1
            while not stop.is_set():
                event = await _recv_or_stop(socket, stop)
                if event is not None:
                    self.last_event_at = self._clock()
                if event is None or event.get("e") in GAP_EVENTS:
                    if event is not None:
                        log.info("user data stream: %s; resubscribing", event.get("e"))
                    return
                stored = await asyncio.to_thread(self.apply, event)
                if stored or self.last_event_at - self._state_told >= self.state_every:
                    await self._tell_state()
        finally:
            was_connected, self.connected = self.connected, False
            await _unsubscribe(socket)
            if was_connected:
                await self._tell_state()

    async def _tell_state(self) -> None:
        self._state_told = self._clock()
        await asyncio.to_thread(self._on_state, self)


async def _recv_or_stop(socket, stop: asyncio.Event) -> dict | None:
    recv, stopped = asyncio.ensure_future(socket.recv()), asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({recv, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for task in (recv, stopped):
        if task not in done:
            task.cancel()
    return recv.result() if recv in done else None


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass


async def _unsubscribe(socket) -> None:
    """Unsubscribe when the connection still serves the subscription (after a drop or a termination it is gone: -2036)."""
    try:
        await asyncio.wait_for(socket.__aexit__(None, None, None), 3)
    except Exception as exc:  # noqa: BLE001 - a subscription that is gone already needs no unsubscribe
        log.debug("user data stream: unsubscribe: %s", type(exc).__name__)


async def _close_client(client) -> None:
    if client is None:
        return
    try:
        await asyncio.wait_for(client.close_connection(), 5)
    except Exception as exc:  # noqa: BLE001 - a client that cannot close cleanly is dropped anyway
        log.debug("user data stream: close: %s", type(exc).__name__)
