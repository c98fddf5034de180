"""Binance's connection limits as small clock-driven objects, plus the reconnect backoff.

* ``backoff_delay``: capped exponential backoff with jitter (half to full of ``min(cap, base * 2**attempt)``).
* ``SlidingWindow``: at most N events per window, e.g. 300 connection attempts per 5 minutes per IP.
  The connection module awaits ``acquire`` before every attempt.
* The 5-incoming-messages-per-second limit is a ``SlidingWindow(n, 1.0)`` per connection, used for
  SUBSCRIBE/UNSUBSCRIBE frames (pongs are sent by the websocket library and leave a margin).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): jittered, never above ``cap``."""
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return rand(ceiling / 2, ceiling)


class SlidingWindow:
    """No more than ``limit`` events in any ``window`` seconds."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._events: deque[float] = deque()

    def wait_needed(self) -> float:
        """Seconds until one more event is allowed (0: now)."""
        now = self._clock()
        while self._events and self._events[0] <= now - self.window:
            self._events.popleft()
        if len(self._events) < self.limit:
            return 0.0
        return self._events[0] + self.window - now

    def record(self) -> None:
        self._events.append(self._clock())

    async def acquire(self) -> float:
        """Wait for a slot and take it; returns how long it waited."""
        waited = 0.0
        while (delay := self.wait_needed()) > 0:
            await asyncio.sleep(delay)
            waited += delay
        self.record()
        return waited
