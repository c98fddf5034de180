"""Everything the fake Binance knows: market, account/order engine, keys, clock, weight and faults."""

from __future__ import annotations

import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.fake_binance.engine import OrderEngine
from tests.fake_binance.errors import TOO_MANY_REQUESTS, FakeBinanceError, weight_message
from tests.fake_binance.market import Market, SymbolInfo



def new_key_pair() -> tuple[str, str]:
    """A throw-away API key and secret for one fake exchange (64 letters and digits each, like Binance's)."""
    alphabet = string.ascii_letters + string.digits
    return tuple("".join(secrets.choice(alphabet) for _ in range(64)) for _ in range(2))


@dataclass
class Fault:
    """One injected answer for ``method path``.

    ``after_execute=False``: answer instead of handling (e.g. 429 with ``Retry-After``, a 503).
    ``after_execute=True``: handle the request (the order IS placed), then answer this instead, e.g.
    503 / -1007 "execution status unknown"; ``delay`` seconds before answering simulates a timeout.
    """

    method: str
    path: str
    status: int
    code: int
    msg: str = ""
    retry_after: int | None = None
    after_execute: bool = False
    delay: float = 0.0
    times: int = 1


class FakeState:
    def __init__(self, clock: Callable[[], float] = time.time, weight_limit: int = 6000, ws_ping_interval: float = 20.0) -> None:
        self.lock = threading.RLock()
        self.market = Market()
        self.engine = OrderEngine(self.market)
        self.api_key, self.api_secret = new_key_pair()  # this fake's one account; printed, never stored
        self.keys: dict[str, str] = {self.api_key: self.api_secret}
        self.clock = clock
        self.skew_ms = 0
        self.weight_limit = weight_limit
        self.retry_after = 7
        self._weight_minute, self._weight = -1, 0
        self.faults: list[Fault] = []
        self.refuse_subscriptions = False  # userDataStream.subscribe.signature answered -1008 while set
        self.requests: list[tuple[str, str, str, str]] = []  # (method, path, raw query, raw body)
        self.ws_ping_interval = ws_ping_interval  # WebSocket API server pings (Binance: 20 s)
        self.user_streams: set = set()  # open WebSocket API sessions (wsapi.WsSession)

    def now_ms(self) -> int:
        return int(self.clock() * 1000) + self.skew_ms

    def rate_limits(self) -> list[dict]:
        return [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": self.weight_limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000}]

    def charge(self, weight: int) -> None:
        """Count ``weight`` in the current minute; past the limit answer 429 + Retry-After (-1003)."""
        minute = self.now_ms() // 60_000
        if minute != self._weight_minute:
            self._weight_minute, self._weight = minute, 0
        if self._weight + weight > self.weight_limit:
            raise FakeBinanceError(429, TOO_MANY_REQUESTS, weight_message(self.weight_limit),
                                   {"Retry-After": str(self.retry_after)})
        self._weight += weight

    def used_weight(self) -> int:
        return self._weight

    def weight_headers(self) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1M": str(self._weight)}

    def order_count_headers(self) -> dict[str, str]:
        return {"X-MBX-ORDER-COUNT-10S": "1", "X-MBX-ORDER-COUNT-1D": str(len(self.engine.orders))}

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.path == path:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def add_symbol(self, symbol: str, base: str, quote: str, filters: list[dict] | None = None) -> None:
        with self.lock:
            self.market.add_symbol(SymbolInfo(symbol, base, quote, *([filters] if filters else [])))
