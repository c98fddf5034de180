"""The fake Binance REST API as an aiohttp application (``build_app(state)``).

Routes under ``/api/v3``: ping, time, exchangeInfo, klines, avgPrice (public); order (POST, GET,
DELETE), order/test, openOrders (GET, DELETE), orderList/oco|oto|otoco, orderList (GET, DELETE), allOrderList,
openOrderList, account, myTrades (signed: ``X-MBX-APIKEY``, HMAC-SHA256 over the raw
query string + raw body without the ``signature`` pair, ``timestamp``/``recvWindow`` rules). Every
answer carries ``X-MBX-USED-WEIGHT-1M``; the WebSocket API (user data stream) is at ``/ws-api/v3`` (``wsapi.py``); past the configured weight limit the answer is 429 with
``Retry-After`` and code -1003. Faults injected through ``FakeState.inject`` come first.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fake_binance import wsapi
from tests.fake_binance.errors import TOO_MANY_REQUESTS, FakeBinanceError, mandatory, weight_message
from tests.fake_binance.signing import check_signed
from tests.fake_binance.state import FakeState

Handler = Callable[[FakeState, dict[str, str]], object]


def _int(params: dict, name: str) -> int | None:
    v = params.get(name)
    if v in (None, ""):
        return None
    try:
        return int(v)
    except ValueError:
        raise mandatory(name) from None


def _exchange_info(state: FakeState, p: dict) -> dict:
    names = [p["symbol"]] if p.get("symbol") else json.loads(p["symbols"]) if p.get("symbols") else list(state.market.symbols)
    infos = [state.market.symbol(n).to_wire() for n in names]
    return {"timezone": "UTC", "serverTime": state.now_ms(), "rateLimits": state.rate_limits(), "exchangeFilters": [],
            "symbols": infos}


def _klines(state: FakeState, p: dict) -> list:
    return state.market.klines(p.get("symbol"), p.get("interval"), _int(p, "startTime"), _int(p, "endTime"), _int(p, "limit"))


def _avg_price(state: FakeState, p: dict) -> dict:
    return {"mins": 5, "price": f"{state.market.price(p.get('symbol')):.8f}", "closeTime": state.now_ms()}


# (method, path) -> (weight, signed, handler(state, params) -> JSON-able answer)
ROUTES: dict[tuple[str, str], tuple[int, bool, Handler]] = {
    ("GET", "/api/v3/ping"): (1, False, lambda s, p: {}),
    ("GET", "/api/v3/time"): (1, False, lambda s, p: {"serverTime": s.now_ms()}),
    ("GET", "/api/v3/exchangeInfo"): (20, False, _exchange_info),
    ("GET", "/api/v3/klines"): (2, False, _klines),
    ("GET", "/api/v3/uiKlines"): (2, False, _klines),
    ("GET", "/api/v3/avgPrice"): (2, False, _avg_price),
    ("POST", "/api/v3/order"): (1, True, lambda s, p: s.engine.place(p, s.now_ms(), test=False)),
    ("POST", "/api/v3/order/test"): (1, True, lambda s, p: s.engine.place(p, s.now_ms(), test=True)),
    ("GET", "/api/v3/order"): (4, True, lambda s, p: s.engine.query(p)),
    ("DELETE", "/api/v3/order"): (1, True, lambda s, p: s.engine.cancel(p, s.now_ms())),
    ("GET", "/api/v3/openOrders"): (6, True, lambda s, p: s.engine.open_orders(p.get("symbol"))),
    ("DELETE", "/api/v3/openOrders"): (1, True, lambda s, p: s.engine.cancel_open(p, s.now_ms())),
    ("POST", "/api/v3/orderList/oco"): (1, True, lambda s, p: s.engine.place_oco(p, s.now_ms())),
    ("POST", "/api/v3/orderList/oto"): (1, True, lambda s, p: s.engine.place_oto(p, s.now_ms())),
    ("POST", "/api/v3/orderList/otoco"): (1, True, lambda s, p: s.engine.place_otoco(p, s.now_ms())),
    ("DELETE", "/api/v3/orderList"): (1, True, lambda s, p: s.engine.cancel_list(p, s.now_ms())),
    ("GET", "/api/v3/orderList"): (4, True, lambda s, p: s.engine.get_list(p)),
    ("GET", "/api/v3/allOrderList"): (20, True, lambda s, p: s.engine.all_lists(p)),
    ("GET", "/api/v3/openOrderList"): (6, True, lambda s, p: s.engine.open_lists_wire(p)),
    ("GET", "/api/v3/account"): (20, True, lambda s, p: s.engine.account(s.now_ms())),
    ("GET", "/api/v3/myTrades"): (20, True, lambda s, p: s.engine.my_trades(p)),
}


ORDER_PATHS = ("/api/v3/order", "/api/v3/orderList/oco", "/api/v3/orderList/oto", "/api/v3/orderList/otoco")
STATE = web.AppKey("state", FakeState)


def build_app(state: FakeState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_get(wsapi.PATH, functools.partial(wsapi.handle, state))
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


async def _dispatch(request: web.Request) -> web.Response:
    state = request.app[STATE]
    raw_query = request.rel_url.raw_query_string
    raw_body = (await request.read()).decode()
    route = ROUTES.get((request.method, request.path))
    if route is None:
        return _json(404, {"code": -1000, "msg": "An unknown error occurred while processing the request."}, {})
    weight, signed, handler = route
    with state.lock:
        state.requests.append((request.method, request.path, raw_query, raw_body))
    fault = state.take_fault(request.method, request.path)
    try:
        if fault is not None and not fault.after_execute:
            return await _fault_answer(state, fault)
        with state.lock:
            state.charge(weight)
            params = _params(raw_query, raw_body)
            if signed:
                check_signed(state.keys, request.headers.get("X-MBX-APIKEY"), raw_query, raw_body, params, state.now_ms())
            result = handler(state, params)
            headers = state.weight_headers()
            if request.method == "POST" and request.path in ORDER_PATHS:
                headers.update(state.order_count_headers())
        if fault is not None:
            return await _fault_answer(state, fault)
        return _json(200, result, headers)
    except FakeBinanceError as err:
        return _json(err.status, err.body(), {**state.weight_headers(), **err.headers})


def _params(raw_query: str, raw_body: str) -> dict[str, str]:
    """Body first, then the query string (the query-string value wins, reference 2.2)."""
    params = dict(parse_qsl(raw_body, keep_blank_values=True))
    params.update(parse_qsl(raw_query, keep_blank_values=True))
    return params


async def _fault_answer(state: FakeState, fault) -> web.Response:
    if fault.delay:
        await asyncio.sleep(fault.delay)
    headers = state.weight_headers()
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    msg = fault.msg or (weight_message(state.weight_limit) if fault.code == TOO_MANY_REQUESTS else "")
    return _json(fault.status, {"code": fault.code, "msg": msg}, headers)


def _json(status: int, body: object, headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)
