"""Which closed candles the topic already has, and which ones it is missing (pure, no I/O).

Per series (``SYMBOL:interval``) the ledger keeps the newest closed open time published and the
open time of the next candle whose closing event is still owed. From that alone it decides, frame
by frame:

* a closing frame is published once: a repeat (an overlapping rotated connection, a reconnect that
  re-sends, a REST backfill that re-fetched it) is a ``DUPLICATE``;
* a frame whose candle is newer than the one owed reveals a gap (a disconnect, a lost closing event):
  the open-time range ``[owed, t)`` is queued for a REST backfill (``Verdict.gap``);
* while a series is being backfilled its closing frames are held (``HOLD``) and released afterwards,
  so closed candles of a series reach the topic exactly once and in increasing open-time order.

In-progress updates are always published (the loader keeps the newest).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from klinepipe.binance.intervals import next_open_time


class Route(enum.Enum):
    """What to do with one kline frame."""

    PUBLISH = "publish"
    DUPLICATE = "duplicate"  # a closing frame the topic already has: skipped
    HOLD = "hold"  # a closing frame of a series being backfilled: kept until the backfill ends


PUBLISH, DUPLICATE, HOLD = Route.PUBLISH, Route.DUPLICATE, Route.HOLD


@dataclass(frozen=True, slots=True)
class Verdict:
    """The ledger's answer for one frame: its route, and whether it revealed a new gap (to backfill)."""

    route: Route
    gap: bool = False


_VERDICTS = {(r, g): Verdict(r, g) for r in Route for g in (False, True)}  # shared: one per answer, none per frame


@dataclass(slots=True)
class _Series:
    interval: str
    owed: int  # open time of the oldest candle whose closing event is not published yet
    last_closed: int = -1
    backfilling: bool = False
    gaps: list[tuple[int, int]] = field(default_factory=list)
    held: list[tuple[int, object]] = field(default_factory=list)


class ClosedCandleLedger:
    """``fill_gaps=False`` (no REST backfill): gaps are still reported (``Verdict.gap``) but nothing is held for them."""

    def __init__(self, fill_gaps: bool = True) -> None:
        self._series: dict[bytes, _Series] = {}
        self._fill_gaps = fill_gaps

    def observe(self, key: bytes, interval: str, open_time: int, closed: bool) -> Verdict:
        """Verdict for one kline frame: ``PUBLISH``, ``DUPLICATE`` or ``HOLD``, and whether it revealed a gap."""
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = _Series(interval, open_time)
        gap = False
        if s.last_closed < 0 and open_time < s.owed and not (s.gaps or s.backfilling):
            s.owed = open_time  # nothing closed published yet: the series starts at the oldest candle seen
        if open_time > s.owed:
            if self._fill_gaps:
                s.gaps.append((s.owed, open_time))
            s.owed = open_time
            gap = True
        if not closed:
            return _VERDICTS[PUBLISH, gap]
        if open_time <= s.last_closed:
            return _VERDICTS[DUPLICATE, gap]
        if s.backfilling or s.gaps:
            s.owed = max(s.owed, next_open_time(open_time, interval))
            return _VERDICTS[HOLD, gap]
        s.last_closed = open_time
        s.owed = max(s.owed, next_open_time(open_time, interval))
        return _VERDICTS[PUBLISH, gap]

    def hold(self, key: bytes, open_time: int, payload: object) -> None:
        """Keep a closing frame (whatever the caller needs to publish it later) until the backfill ends."""
        self._series[key].held.append((open_time, payload))

    def start_backfill(self, key: bytes) -> tuple[str, int, int] | None:
        """The next gap ``(interval, start, end)`` (end exclusive) to fetch, marking the series busy; ``None``: idle."""
        s = self._series[key]
        if not s.gaps:
            return None
        s.backfilling = True
        start, end = s.gaps.pop(0)
        return s.interval, start, end

    def admit_backfilled(self, key: bytes, open_time: int) -> bool:
        """Whether a closed candle fetched over REST is new to the topic (and record it as published)."""
        s = self._series[key]
        if open_time <= s.last_closed:
            return False
        s.last_closed = open_time
        return True

    def finish_backfill(self, key: bytes) -> list[object]:
        """End the backfill; the held closing frames, oldest first, to be observed again."""
        s = self._series[key]
        s.backfilling = False
        held, s.held = sorted(s.held, key=lambda h: h[0]), []
        return [payload for _, payload in held]

    def is_backfilling(self, key: bytes) -> bool:
        s = self._series.get(key)
        return s is not None and s.backfilling

    def last_closed(self, key: bytes) -> int | None:
        s = self._series.get(key)
        return None if s is None or s.last_closed < 0 else s.last_closed
