"""Run the fake Binance in a background thread on a free port: ``with FakeBinance() as fake: ...``."""

from __future__ import annotations

import asyncio
import socket
import threading
from decimal import Decimal

from aiohttp import web

from tests.fake_binance import wsapi
from tests.fake_binance.app import build_app
from tests.fake_binance.state import Fault, FakeState


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class FakeBinance:
    """A running fake REST server plus a small API to seed it and inject faults.

    ``url`` is the base (``http://127.0.0.1:PORT``); ``api_url`` is what python-binance's ``API_URL``
    must be set to. ``state`` is the whole fake exchange (``FakeState``) for anything not wrapped here.
    """

    def __init__(self, state: FakeState | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state or FakeState()
        self.host, self.port = host, port or free_port(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def api_key(self) -> str:
        return self.state.api_key

    @property
    def api_secret(self) -> str:
        return self.state.api_secret

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def ws_api_url(self) -> str:
        """What python-binance's ``WS_API_URL`` must be set to (the WebSocket API, user data stream)."""
        return f"ws://{self.host}:{self.port}{wsapi.PATH}"

    def start(self) -> FakeBinance:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(build_app(self.state), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, self.host, self.port).start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-binance", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Binance did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        self._on_loop(wsapi.drop_all(self.state))  # open WebSocket API connections would hold the shutdown
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- seeding and faults -------------------------------------------------------------------
    def add_symbol(self, symbol: str = "BTCUSDT", base: str = "BTC", quote: str = "USDT", filters: list[dict] | None = None) -> None:
        self.state.add_symbol(symbol, base, quote, filters)

    def seed_klines(self, symbol: str, interval: str, rows: list[list]) -> None:
        """Serve these 12-column kline rows (e.g. ``tests.helpers.sample_rows``); moves the price to the newest close."""
        with self.state.lock:
            self.state.market.seed_klines(symbol, interval, rows)
            self.state.engine.on_price(symbol, self.state.market.price(symbol), self.state.now_ms())

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        """One trade at ``price``: the last price moves; resting LIMIT orders it reaches fill, stops it reaches trigger."""
        with self.state.lock:
            self.state.market.set_price(symbol, Decimal(price))
            self.state.engine.on_price(symbol, Decimal(price), self.state.now_ms())

    def trade(self, symbol: str, *prices: Decimal | str) -> None:
        """A run of trades, one ``set_price`` each (a trailing stop sees every one)."""
        for price in prices:
            self.set_price(symbol, price)

    def set_symbol(self, symbol: str, **wire) -> None:
        """Switch exchangeInfo fields of ``symbol`` by wire name: ``status="CANCEL_ONLY"``, ``ocoAllowed=False``,
        ``orderTypes=[...]``, ``allowTrailingStop=False``, ``allowedSelfTradePreventionModes=[...]``, ``filters=[...]``."""
        with self.state.lock:
            self.state.market.symbol(symbol).update(**wire)

    def deposit(self, asset: str, amount: Decimal | str, stream: bool = False) -> None:
        """Credit the account; ``stream=True`` also reports it as a deposit (``balanceUpdate``) on the user data stream."""
        with self.state.lock:
            self.state.engine.deposit(asset, Decimal(amount), self.state.now_ms() if stream else None)

    # --- user data stream (WebSocket API) controls ---------------------------------------------
    def _on_loop(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def drop_user_streams(self) -> int:
        """Cut every WebSocket API connection (no close frame); returns how many."""
        return self._on_loop(wsapi.drop_all(self.state))

    def refuse_user_streams(self, refuse: bool = True) -> None:
        """While set, every ``userDataStream.subscribe.signature`` is answered 503 / -1008 (server busy): a stream that was
        dropped stays down, so what happens meanwhile reaches a client only over REST."""
        with self.state.lock:
            self.state.refuse_subscriptions = refuse

    def terminate_user_streams(self) -> int:
        """Send ``eventStreamTerminated`` to every user-data subscription and end it (connections stay open)."""
        return self._on_loop(wsapi.terminate_all(self.state))

    def shutdown_user_streams(self, grace: float = 0.2) -> None:
        """``serverShutdown`` then close, on every WebSocket API connection."""
        self._on_loop(wsapi.shutdown_all(self.state, grace))

    def user_stream_subscriptions(self) -> list[list[int]]:
        """The active subscription ids of each open WebSocket API connection."""
        with self.state.lock:
            return [list(s.subscriptions) for s in self.state.user_streams]

    def lists(self) -> list[dict]:
        with self.state.lock:
            return [dict(x) for x in self.state.engine.lists.values()]

    def inject(self, fault: Fault) -> None:
        self.state.inject(fault)

    def set_skew(self, ms: int) -> None:
        """Shift the server clock by ``ms`` (positive: the server is ahead of the client)."""
        self.state.skew_ms = ms

    def orders(self, symbol: str | None = None) -> list[dict]:
        with self.state.lock:
            return [dict(o) for o in self.state.engine.orders.values() if symbol in (None, o["symbol"])]

    def requests(self, path: str | None = None) -> list[tuple[str, str, str, str]]:
        with self.state.lock:
            return [r for r in self.state.requests if path in (None, r[1])]
