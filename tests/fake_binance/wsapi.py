"""The fake's WebSocket API at ``/ws-api/v3`` (binance-protective-orders.md 4; spot reference 6.1): the user data stream.

Requests ``{"id","method","params"}``; replies ``{"id","status":200,"result",...,"rateLimits"}`` or
``{"id","status":4xx,"error":{"code","msg"},"rateLimits"}``. Methods: ``userDataStream.subscribe.signature``
(HMAC over the sorted, unencoded params; ``-2035`` when this connection already has the account's subscription),
``userDataStream.unsubscribe`` (one ``subscriptionId`` or all; ``-2036`` when not active; each ending subscription gets
an ``eventStreamTerminated`` event), ``session.status``, ``session.subscriptions``, ``ping``, ``time``.
``userDataStream.subscribe`` needs an Ed25519 ``session.logon``, which the fake does not offer (``-1002``).
Events go out as ``{"subscriptionId":N,"event":{...}}`` in the order the engine makes them. The server pings every
``FakeState.ws_ping_interval`` seconds (20) and drops a connection whose pong does not come (aiohttp heartbeat).
Test controls (``FakeBinance.drop_user_streams``, ``terminate_user_streams``, ``shutdown_user_streams``) act here.
No listenKey endpoints: they are gone since 2026-02-20.
"""

from __future__ import annotations

import asyncio
import json
from itertools import count

from aiohttp import WSMsgType, web

from tests.fake_binance.errors import SUBSCRIPTION_ACTIVE, SUBSCRIPTION_INACTIVE, FakeBinanceError
from tests.fake_binance.signing import check_ws_signed

PATH = "/ws-api/v3"
_session_ids = count(1)


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


class WsSession:
    """One WebSocket API connection: its subscriptions and an ordered outbox (events may come from any thread)."""

    def __init__(self, state, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.state, self.request, self.ws = state, request, ws
        self.id = next(_session_ids)
        self.loop = asyncio.get_running_loop()
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.subscriptions: list[int] = []
        self.next_subscription = 0
        self.connected_since = state.now_ms()

    def push(self, text: str | None) -> None:
        self.loop.call_soon_threadsafe(self.outbox.put_nowait, text)

    def on_event(self, event: dict) -> None:
        """Engine listener (called under the state lock): one frame per active subscription."""
        for sid in self.subscriptions:
            self.push(_dumps({"subscriptionId": sid, "event": event}))

    def terminate(self, sid: int) -> None:
        self.subscriptions.remove(sid)
        self.push(_dumps({"subscriptionId": sid, "event": {"e": "eventStreamTerminated", "E": self.state.now_ms()}}))

    async def write_forever(self) -> None:
        while (text := await self.outbox.get()) is not None:
            if self.ws.closed:
                return
            await self.ws.send_str(text)

    # --- requests ---------------------------------------------------------------------------
    def answer(self, raw: str) -> dict:
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise ValueError
        except ValueError:
            return self._error(None, FakeBinanceError(400, -1135, "Invalid JSON Request"))
        ident, method, params = req.get("id"), req.get("method"), req.get("params") or {}
        try:
            with self.state.lock:
                self.state.charge(2 if method and method.startswith("userDataStream") else 1)
                result = self._call(method, params)
        except FakeBinanceError as err:
            return self._error(ident, err)
        return {"id": ident, "status": 200, "result": result, "rateLimits": self._limits()}

    def _call(self, method: str | None, params: dict) -> object:
        if method == "userDataStream.subscribe.signature":
            check_ws_signed(self.state.keys, params, self.state.now_ms())
            if self.state.refuse_subscriptions:  # a test holds the stream down (server.refuse_user_streams)
                raise FakeBinanceError(503, -1008, "Server is currently overloaded with other requests. Please try again in a few minutes.")
            if self.subscriptions:
                raise FakeBinanceError(400, SUBSCRIPTION_ACTIVE, "User Data Stream subscription already active.")
            sid = self.next_subscription
            self.next_subscription += 1
            self.subscriptions.append(sid)
            return {"subscriptionId": sid}
        if method == "userDataStream.unsubscribe":
            wanted = params.get("subscriptionId")
            ending = list(self.subscriptions) if wanted is None else [int(wanted)]
            if wanted is not None and int(wanted) not in self.subscriptions:
                raise FakeBinanceError(400, SUBSCRIPTION_INACTIVE, "User Data Stream subscription not active.")
            self.loop.call_soon(lambda: [self.terminate(s) for s in ending if s in self.subscriptions])  # after the reply
            return {}
        if method == "userDataStream.subscribe":
            raise FakeBinanceError(400, -1002, "You are not authorized to execute this request.")
        if method == "session.subscriptions":
            return [{"subscriptionId": s} for s in self.subscriptions]
        if method == "session.status":
            return {"apiKey": None, "authorizedSince": None, "connectedSince": self.connected_since, "returnRateLimits": True,
                    "serverTime": self.state.now_ms(), "userDataStream": bool(self.subscriptions)}
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self.state.now_ms()}
        raise FakeBinanceError(400, -1020, "Unsupported operation.")

    def _error(self, ident, err: FakeBinanceError) -> dict:
        return {"id": ident, "status": err.status, "error": err.body(), "rateLimits": self._limits()}

    def _limits(self) -> list[dict]:
        return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": self.state.weight_limit,
                 "count": self.state.used_weight()}]


async def handle(state, request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=state.ws_ping_interval, autoping=True)
    await ws.prepare(request)
    session = WsSession(state, request, ws)
    writer = asyncio.ensure_future(session.write_forever())
    with state.lock:
        state.user_streams.add(session)
        state.engine.listeners.append(session.on_event)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                session.push(_dumps(session.answer(msg.data)))
    finally:
        with state.lock:
            state.user_streams.discard(session)
            state.engine.listeners.remove(session.on_event)
        session.push(None)
        await asyncio.wait([writer], timeout=1)
    return ws


# --- test controls, run on the server's loop --------------------------------------------------------
async def drop_all(state) -> int:
    """Cut every WebSocket API connection without a close frame (a network drop)."""
    with state.lock:
        sessions = list(state.user_streams)
    for s in sessions:
        s.request.transport.abort()
    return len(sessions)


async def terminate_all(state) -> int:
    """End every subscription with ``eventStreamTerminated``; the connections stay open."""
    n = 0
    with state.lock:
        for s in list(state.user_streams):
            for sid in list(s.subscriptions):
                s.terminate(sid)
                n += 1
    return n


async def shutdown_all(state, grace: float = 0.2) -> None:
    """``serverShutdown`` to every connection, then a normal close."""
    with state.lock:
        sessions = list(state.user_streams)
    for s in sessions:
        s.push(_dumps({"event": {"e": "serverShutdown", "E": state.now_ms()}}))
    await asyncio.sleep(grace)
    for s in sessions:
        await s.ws.close()
