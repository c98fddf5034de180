"""The demo market (pure): the bundled real candles, replayed in a loop with their times shifted to the present.

What ``make run`` streams when Binance is unreachable, so the demo never runs dry: each candle of a series
is a candle of the bundled file, placed on the clock so that it closes on the wall clock (one a minute for
a 1m series at 1×). The market is a pure function of time: the candle opening at ``T`` is row
``n mod 2N`` of the file's "there and back" cycle, ``n = T / interval`` and ``N`` its rows. Odd laps play
the file backwards, each candle mirrored (open and close swapped, high, low and volumes kept), so

- every lap begins exactly at the price the last one ended on (a forward lap ends on the last close, which
  is the first open of the backward lap, and the other way round): no jump at a lap boundary;
- prices stay in the file's real range however long it runs (scaling each lap to continue from the last
  close would compound: the bundled 1h file ends at 2.4× its first open, so it would double every lap);
- open times go up one interval at a time forever, nothing goes back, and a restart, which resumes after
  the newest stored candle, produces exactly the candles that a run without the restart would have.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from klinepipe.binance.intervals import VARIABLE_LENGTH, interval_ms
from klinepipe.binance.rows import BinanceKlineRow, closing_event, parse_kline_row
from klinepipe.errors import KlineParseError
from streaming.replay import series_from_name

_LONGEST = interval_ms("1d")  # 3d and 1w candles do not open on multiples of their length since 1970


@dataclass(frozen=True, slots=True)
class DemoCandle:
    open_time: int
    close_ms: int  # when it closes: close_time + 1, the E of its closing event
    lap: int
    mirrored: bool
    event: dict  # the closing kline event, as Binance sends it

    @property
    def frame(self) -> bytes:
        return msgspec.json.encode(self.event)


class DemoSeries:
    """One series of the demo market, built from a 12-column kline CSV named ``SYMBOL-INTERVAL*.csv[.gz]``."""

    def __init__(self, rows: list[list[str]], symbol: str, interval: str) -> None:
        if interval in VARIABLE_LENGTH or interval_ms(interval) > _LONGEST:
            raise ValueError(f"the demo market needs an interval of fixed length up to 1d, not {interval}")
        if not rows:
            raise ValueError(f"no candles to build the demo {symbol} {interval} market from")
        try:
            self.rows: list[BinanceKlineRow] = [parse_kline_row(r) for r in rows]
        except KlineParseError as exc:
            raise ValueError(f"the demo {symbol} {interval} market: {exc}") from None
        self.symbol, self.interval = symbol, interval
        self.interval_ms = interval_ms(interval)
        self.series = f"{symbol}:{interval}"

    @classmethod
    def from_file(cls, path: Path) -> DemoSeries:
        symbol, interval = series_from_name(path)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", newline="") as f:
            rows = [r for r in csv.reader(f) if r and r[0].strip().isdigit()]
        return cls(rows, symbol, interval)

    def candle(self, open_time: int) -> DemoCandle:
        """The candle opening at ``open_time`` (a multiple of the interval)."""
        if open_time % self.interval_ms:
            raise ValueError(f"{open_time} is not the open time of a {self.interval} candle")
        n = len(self.rows)
        step = open_time // self.interval_ms % (2 * n)
        mirrored = step >= n
        row = self.rows[2 * n - 1 - step if mirrored else step]
        if mirrored:
            row = msgspec.structs.replace(row, open=row.close, close=row.open)
        row = msgspec.structs.replace(row, open_time=open_time, close_time=open_time + self.interval_ms - 1)
        event = closing_event(row, self.symbol, self.interval)
        return DemoCandle(open_time, open_time + self.interval_ms, open_time // self.interval_ms // n, mirrored, event)

    def first_open_after(self, after_ms: int) -> int:
        """The open time of the first candle that closes after ``after_ms`` (closes at ``open + interval``)."""
        return ((after_ms - self.interval_ms) // self.interval_ms + 1) * self.interval_ms

    def candles(self, after_ms: int) -> Iterator[DemoCandle]:
        """Every candle closing after ``after_ms``, in order, without end."""
        t = self.first_open_after(after_ms)
        while True:
            yield self.candle(t)
            t += self.interval_ms


def start_point(series: DemoSeries, resume_ms: int | None, now_ms: int, history: int) -> tuple[int, str]:
    """Where a series starts (candles closing after the returned ms are published) and why, in words.

    It goes on after its newest stored candle (``resume_ms``) when that is recent; otherwise it starts with
    the last ``history`` candles before now, so features and the trader have a warm-up at once."""
    floor = series.first_open_after(now_ms) - history * series.interval_ms
    if resume_ms is not None and resume_ms >= floor:
        return resume_ms, "going on after the newest stored candle"
    if resume_ms is None:
        return floor, f"starting with the last {history} candles"
    return floor, (f"the newest stored candle is older than {history} candles: starting with the last {history}"
                   " (the time between is not filled)")


class DemoClock:
    """The demo market's clock in epoch ms: the wall clock at 1×, ``speed`` times faster when asked, starting
    at ``start_ms`` (now, or later when an earlier faster run already went past now)."""

    def __init__(self, start_ms: int, speed: float, wall_start: float) -> None:
        self.start_ms, self.speed, self.wall_start = start_ms, speed, wall_start

    def now_ms(self, wall: float) -> int:
        return self.start_ms + int((wall - self.wall_start) * 1000 * self.speed)

    def wall_at(self, market_ms: int) -> float:
        """The wall time (``time.time()``) at which the market's clock reads ``market_ms``."""
        return self.wall_start + (market_ms - self.start_ms) / 1000 / self.speed
