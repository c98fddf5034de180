"""Replay recorded klines as Binance kline events, paced against a simulated clock.

Sources: Binance's 12-column kline CSV (``open_time,open,high,low,close,volume,close_time,
quote_asset_volume,number_of_trades,taker_buy_base_volume,taker_buy_quote_volume,ignore``; plain or
``.gz``; a header row is optional; times in ms or µs), or a JSONL file of raw frames as recorded.
A CSV row becomes the closing event of its candle (``x: true``); fields absent from the file are
left out of the event rather than invented.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\d+[smhdwM])")


@dataclass(frozen=True, slots=True)
class Recorded:
    at_ms: int  # when the frame happened, on the recording's clock
    frame: bytes
    series: str = ""  # "SYMBOL:interval", the Kafka key of the frame ("" when unknown)


ALL_SERIES = "*"  # the key of a resume point that applies to every series without one of its own


def series_from_name(path: Path) -> tuple[str, str]:
    """``BTCUSDT-1m.csv.gz`` -> ``("BTCUSDT", "1m")``."""
    m = _NAME.match(path.name)
    if not m:
        raise ValueError(f"cannot tell symbol and interval from the file name {path.name!r} (expected SYMBOL-INTERVAL.csv)")
    return m["symbol"], m["interval"]


def read_recorded(path: Path) -> Iterator[Recorded]:
    """Frames of a CSV or JSONL recording, in file order."""
    if ".jsonl" in path.suffixes:
        return _read_jsonl(path)
    symbol, interval = series_from_name(path)
    return _read_csv(path, symbol, interval)


def _open_text(path: Path) -> io.TextIOBase:
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")


def _read_jsonl(path: Path) -> Iterator[Recorded]:
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
        for line in f:
            line = line.strip()
            if line:
                yield _recorded_line(line)


def _recorded_line(line: bytes) -> Recorded:
    at_ms, series = _event_time_and_series(line)
    return Recorded(at_ms, line, series)


def _event_time_and_series(frame: bytes) -> tuple[int, str]:
    try:
        obj = msgspec.json.decode(frame)
        if isinstance(obj.get("data"), dict):
            obj = obj["data"]  # a combined-stream frame, as ``record`` writes them
        k = obj.get("k")
        series = f"{k.get('s') or obj.get('s')}:{k.get('i')}" if isinstance(k, dict) and k.get("i") else ""
        return int(obj.get("E", 0)), series
    except (msgspec.DecodeError, AttributeError, TypeError, ValueError):
        return 0, ""


def _read_csv(path: Path, symbol: str, interval: str) -> Iterator[Recorded]:
    with _open_text(path) as f:
        for row in csv.reader(f):
            if not row or not row[0].strip().isdigit():
                continue  # header or blank line
            event = csv_row_to_event(row, symbol, interval)
            yield Recorded(event["E"], msgspec.json.encode(event), f"{symbol}:{interval}")


def csv_row_to_event(row: list[str], symbol: str, interval: str) -> dict:
    """One 12-column kline row -> the closing kline event of that candle."""
    open_time, close_time = _ms(row[0]), _ms(row[6])
    k: dict = {"t": open_time, "T": close_time, "s": symbol, "i": interval,
               "o": row[1], "c": row[4], "h": row[2], "l": row[3], "v": row[5]}
    if len(row) > 8 and row[8].strip():
        k["n"] = int(row[8])
    k["x"] = True
    for name, col in (("q", 7), ("V", 9), ("Q", 10)):
        if len(row) > col and row[col].strip():
            k[name] = row[col]
    return {"e": "kline", "E": close_time + 1, "s": symbol, "k": k}


def _ms(text: str) -> int:
    value = int(text)
    return value // 1000 if value >= 10**15 else value  # data.binance.vision files since 2025 use µs


def frames_after(frames: Iterable[Recorded], after_ms: int | Mapping[str, int] | None) -> Iterator[Recorded]:
    """The frames that happened after ``after_ms`` (all of them when it is None).

    A mapping holds one resume point per series (``{"BTCUSDT:1m": ms, ...}``; ``"*"`` for every other
    series): each series goes on after its own newest stored event, never after another's."""
    if after_ms is None:
        return iter(frames)
    if isinstance(after_ms, Mapping):
        return (rec for rec in frames if rec.at_ms > resume_point(after_ms, rec.series, default=-1))
    return (rec for rec in frames if rec.at_ms > after_ms)


def resume_point(points: Mapping[str, int] | int | None, series: str, default=None):
    """The resume point of one series: its own, else the one for all series, else ``default``."""
    if points is None or isinstance(points, int):
        return default if points is None else points
    return points.get(series, points.get(ALL_SERIES, default))


def pace(frames: Iterable[Recorded], speed: float, *, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> Iterator[Recorded]:
    """Yield frames no faster than ``speed`` × the recording's own pace (``inf``: as fast as possible)."""
    start_wall: float | None = None
    start_at = 0
    for rec in frames:
        if not math.isinf(speed):
            if start_wall is None:
                start_wall, start_at = clock(), rec.at_ms
            due = start_wall + (rec.at_ms - start_at) / 1000.0 / speed
            delay = due - clock()
            if delay > 0:
                sleep(delay)
        yield rec
