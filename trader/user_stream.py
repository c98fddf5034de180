"""Fills from the Binance user data stream into the ledger (binance-protective-orders.md 4).

``UserStream.run`` subscribes over the WebSocket API with python-binance (``BinanceSocketManager.user_socket``, which
sends ``userDataStream.subscribe.signature``; listenKeys are gone since 2026-02-20) and applies every
``executionReport`` with ``x=TRADE`` of an order the ledger has open, in one transaction, through
``order_records.apply_report`` -- idempotent per (client order id, trade id), so a fill seen on the stream and again
over REST moves a position once. ``z`` is not trusted alone: the report carries every stored fill of the order plus
the new one, so the executed quantity is the sum of the fills.

Protection legs (``-PS`` / ``-PT``, ``trader.protector``) are looked up too: a stop or take-profit that fires at the
exchange is applied from its ``TRADE`` event like any SELL -- the position moves, a ``protection_triggered`` event is
recorded and, for an OCO, the sibling still open in the ledger ends ``EXPIRED`` (``OCO_TRIGGER``), all in the fill's
one transaction (``order_records.apply_report``). A leg's own final event (``x`` ``EXPIRED`` / ``CANCELED`` /
``REJECTED``: the OCO sibling's expiry, a cancel) is applied as the venue says, when the ledger holds every fill the
event counts (``z``; else REST tells). ``listStatus`` adds nothing: the legs' events say it all.

REST stays the source of truth. After every (re)subscription -- at start, after a dropped connection, an
``eventStreamTerminated`` or a ``serverShutdown`` -- ``catch_up`` runs (``refresh_open_orders``: each accepted open
order looked up by client order id, its fills applied; orders still ``PENDING_SUBMIT`` are the main loop's to send),
*after* the new subscription is active, so no event can fall in a gap; protection legs included. Balance events are not applied: the ledger's balances move with its fills, and the exchange's balances are
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


FINAL_EXECUTIONS = ("EXPIRED", "CANCELED", "REJECTED")


def parse_final(event: dict) -> tuple[str, str, str, Decimal, str | None] | None:
    """(client order id, status, exchange order id, cumulative quantity, expiry reason) of an ``executionReport`` that
    ends an order without a trade, else ``None``. On a cancel ``c`` is the cancel's id and ``C`` the order's."""
    if event.get("e") != "executionReport" or event.get("x") not in FINAL_EXECUTIONS:
        return None
    return event.get("C") or event["c"], event["X"], str(event["i"]), Decimal(event["z"]), event.get("eR")


def _stored_fills(cur, client_order_id: str) -> list[Fill]:
    cur.execute("SELECT trade_id, quantity, price, fee, fee_asset, filled_at FROM trading.fills WHERE client_order_id = %s"
                " ORDER BY id", (client_order_id,))
    return [Fill(trade_id=t, quantity=q, price=p, fee=f, fee_asset=a, filled_at_ms=to_ms(at)) for t, q, p, f, a, at in cur.fetchall()]


def refresh_open_orders(executor, transaction: Callable) -> None:
    """The REST catch-up: look up every accepted open order of the executor's mode (protection legs too) and apply
    what the venue says."""
    with transaction() as cur:
        pending = order_records.open_orders(cur, executor.broker.mode, protection=None)
    for intent, status, _ in pending:
        if status != "PENDING_SUBMIT":
            executor.refresh(intent)


def _open_order(cur, mode: str, client_order_id: str) -> OrderIntent | None:
    """The ledger's open order of that id (protection legs included), else ``None``."""
    return next((i for i, _, _ in order_records.open_orders(cur, mode, protection=None) if i.client_order_id == client_order_id),
                None)


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
        self.protection_applied = 0  # of those, fills of protection legs (a stop or take-profit that fired)
        self.closed = 0  # orders the stream ended without a trade (a protection leg expired or cancelled)

    def apply(self, event: dict) -> bool:
        """Apply one event; ``True`` when it stored a fill the ledger did not have."""
        if event.get("e") == "balanceUpdate":
            with self._tx() as cur:
                record_event(cur, self.mode, "balance_update", f"{event['a']} {event['d']} (user data stream)")
            return False
        trade = parse_trade(event)
        if trade is None:
            self._apply_final(event)
            return False
        cid, fill, status, exchange_id = trade
        with self._tx() as cur:
            intent = _open_order(cur, self.mode, cid)
            if intent is None:  # not ours, or final already: reconciliation sees foreign trades
                return False
            fills = [f for f in _stored_fills(cur, cid) if f.trade_id != fill.trade_id] + [fill]
            report = OrderReport(client_order_id=cid, status=status, exchange_order_id=exchange_id,
                                 executed_qty=sum((f.quantity for f in fills), Decimal(0)), fills=tuple(fills))
            new = order_records.apply_report(cur, self.mode, intent, report)
        self.applied += len(new)
        if order_records.is_protection_leg(cid):
            self.protection_applied += len(new)
        for stored in new:
            self._on_fill(intent, stored)
        return bool(new)

    def _apply_final(self, event: dict) -> bool:
        """A protection leg ended without a trade (expired, cancelled): its status as the venue says."""
        final = parse_final(event)
        if final is None or not order_records.is_protection_leg(final[0]):
            return False
        cid, status, exchange_id, executed, reason = final
        with self._tx() as cur:
            intent = _open_order(cur, self.mode, cid)
            fills = _stored_fills(cur, cid) if intent is not None else []
            if intent is None or sum((f.quantity for f in fills), Decimal(0)) != executed:
                return False  # final already, or a fill the ledger misses: REST tells
            order_records.apply_report(cur, self.mode, intent, OrderReport(
                client_order_id=cid, status=status, exchange_order_id=exchange_id, executed_qty=executed, fills=tuple(fills),
                expiry_reason=reason))
        self.closed += 1
        return True

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
