"""Riding out an outage of a dependency (PostgreSQL, the broker, Binance REST): one pure helper.

A long-running part calls ``failed(exc)`` each time a call to the dependency fails and ``ok()`` each
time one succeeds. ``Outage`` then

- logs ONE warning when the dependency goes down (not one per retry) and one line when it is back,
  saying how long it was gone and how many retries it took;
- returns the delay before the next attempt: exponential from ``backoff_initial``, capped at
  ``backoff_max``, reset on recovery;
- keeps the figures a metric shows: ``up`` (1/0) and ``outages`` (how many times it went down).

    pg = Outage("postgres", log)
    while True:
        try:
            work()
        except OperationalError as exc:
            await asyncio.sleep(pg.failed(exc))
            continue
        pg.ok()

Pure: no I/O library, a clock passed in for tests. (The trader may have its own tracker; fold the
two together when both exist.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


def one_line(exc: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message`` -- what an operator needs, without a traceback."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Outage:
    """The state of one dependency as seen by one part (see the module doc)."""

    def __init__(self, dependency: str, log: logging.Logger, *, backoff_initial: float = 1.0, backoff_max: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if backoff_initial <= 0 or backoff_max < backoff_initial:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        self.dependency, self._log, self._clock = dependency, log, clock
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.up = True
        self.outages = 0  # times the dependency went down
        self.retries = 0  # failed attempts in the current outage
        self.since: float | None = None  # clock() when the current outage began

    def failed(self, exc: BaseException | str) -> float:
        """A call failed: log it if this starts an outage; return the seconds to wait before the next try."""
        self.retries += 1
        if self.up:
            self.up, self.since = False, self._clock()
            self.outages += 1
            why = exc if isinstance(exc, str) else one_line(exc)
            self._log.warning("%s unreachable (%s); retrying with backoff up to %gs, quietly until it is back",
                              self.dependency, why, self.backoff_max)
        return self.delay()

    def ok(self) -> None:
        """A call succeeded: log the recovery when an outage ends."""
        if self.up:
            return
        gone = self._clock() - (self.since or self._clock())
        self._log.warning("%s is back after %.1fs (%d failed attempts)", self.dependency, gone, self.retries)
        self.up, self.retries, self.since = True, 0, None

    def delay(self) -> float:
        """The wait before the next attempt: doubles per failed attempt, capped; the initial one when up."""
        if self.retries <= 1:
            return self.backoff_initial
        return min(self.backoff_max, self.backoff_initial * 2 ** min(self.retries - 1, 62))

    @property
    def down_for(self) -> float:
        """Seconds since the current outage began (0 when up)."""
        return 0.0 if self.since is None else self._clock() - self.since
