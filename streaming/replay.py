"""Replay recorded klines as Binance kline events, paced against a simulated clock.

Sources: Binance's 12-column kline CSV (``open_time,open,high,low,close,volume,close_time,
quote_asset_volume,number_of_trades,taker_buy_base_volume,taker_buy_quote_volume,ignore``; plain or
``.gz``; a header row is optional; times in ms or µs: ``klinepipe.binance.rows``), or a JSONL file of raw
frames as recorded.
A CSV row becomes the closing event of its candle (``x: true``); fields absent from the file are
left out of the event rather than invented.
"""

from __future__ import annotations

import csv
import gzip
import math
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from klinepipe.binance.events import DECODE_ERRORS
from klinepipe.binance.rows import closing_event, is_header, parse_kline_row, series_from_file_name
from klinepipe.binance.times import MAX_TIME_MS
from klinepipe.errors import KlineParseError
from klinepipe.kline import parse_kline_event
from streaming.errors import RowError


@dataclass(frozen=True, slots=True)
class Recorded:
    at_ms: int | None  # when the frame happened, on the recording's clock (None: unknown, not paced)
    frame: bytes
    error: str | None = None  # set for a line that is not a kline: it goes to the dead-letter topic
    series: str = ""  # "SYMBOL:interval", the Kafka key of the frame ("" when unknown)


ALL_SERIES = "*"  # the key of a resume point that applies to every series without one of its own


def series_from_name(path: Path) -> tuple[str, str]:
    """``BTCUSDT-1m.csv.gz`` -> ``("BTCUSDT", "1m")`` (``klinepipe.binance.rows.series_from_file_name``)."""
    return series_from_file_name(path.name)


def read_recorded(path: Path) -> Iterator[Recorded]:
    """Frames of a CSV or JSONL recording, in file order: every line becomes a frame or, when it is not a
    kline, a ``Recorded`` with its ``error`` (a dead letter), whatever its bytes."""
    if ".jsonl" in path.suffixes:
        return _read_jsonl(path)
    symbol, interval = series_from_name(path)
    return _read_csv(path, symbol, interval)


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _lines(path: Path) -> Iterator[tuple[int, bytes | None, str | None]]:
    """(line number, line, None) of a plain or gzipped file; a damaged gzip ends it with (n, None, why)."""
    n = 0
    with _open_binary(path) as f:  # a missing file fails here, as a setting error
        try:
            for n, line in enumerate(f, 1):
                yield n, line, None
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            yield n + 1, None, f"{path.name}: unreadable after line {n}: {type(exc).__name__}: {exc}"


def _read_jsonl(path: Path) -> Iterator[Recorded]:
    for _n, line, why in _lines(path):
        if why is not None:
            yield Recorded(None, b"", why)
        elif line := line.strip():
            at_ms, series = _event_time_and_series(line)
            yield Recorded(at_ms, line, series=series)


_decode_time = msgspec.json.Decoder(dict[str, object]).decode


def _event_time_and_series(frame: bytes) -> tuple[int | None, str]:
    """The frame's event time ``E`` (of ``data`` for a combined-stream frame; None when it has none) and its
    series ``SYMBOL:interval`` ("" when it names none)."""
    try:
        obj = _decode_time(frame)
    except DECODE_ERRORS:
        return None, ""
    data = obj.get("data")
    if isinstance(data, dict):
        obj = data  # a combined-stream frame, as ``record`` writes them
    at, k = obj.get("E"), obj.get("k")
    symbol = k.get("s") or obj.get("s") if isinstance(k, dict) else None
    interval = k.get("i") if isinstance(k, dict) else None
    series = f"{symbol}:{interval}" if isinstance(symbol, str) and isinstance(interval, str) and interval else ""
    return (at if type(at) is int and 0 <= at <= MAX_TIME_MS else None), series


def _read_csv(path: Path, symbol: str, interval: str) -> Iterator[Recorded]:
    for n, line, why in _lines(path):
        if why is not None:
            yield Recorded(None, b"", why)
            continue
        if line.strip():
            try:
                row = _csv_fields(line)
                if n == 1 and is_header(row):
                    continue  # a header row
                event = csv_row_to_event(row, symbol, interval)
                yield Recorded(event["E"], msgspec.json.encode(event), series=f"{symbol}:{interval}")
            except RowError as exc:
                yield Recorded(None, line.rstrip(b"\r\n"), f"{path.name} line {n}: {exc}")


def _csv_fields(line: bytes) -> list[str]:
    try:
        return next(csv.reader((line.decode("utf-8"),)))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RowError(f"not a CSV line of UTF-8 text: {exc}") from None


def csv_row_to_event(row: list, symbol: str, interval: str) -> dict:
    """One 12-column kline row (CSV strings, or a REST row's JSON values) -> the closing kline event of that
    candle (``klinepipe.binance.rows``); ``RowError`` when it is not a kline row."""
    try:
        return closing_event(parse_kline_row(row), symbol, interval)
    except KlineParseError as exc:
        raise RowError(str(exc)) from None


def row_to_frame(row, symbol: str, interval: str) -> tuple[int, bytes]:
    """A REST kline row -> (open time, the closing kline event's bytes); ``RowError`` when it is not a candle
    the loader would accept (checked by its parser, as every frame the sidecar publishes)."""
    event = csv_row_to_event(row, symbol, interval)
    try:
        frame = msgspec.json.encode(event)
    except UnicodeEncodeError as exc:  # a lone surrogate ("\\ud800" in the JSON) cannot be UTF-8
        raise RowError(f"a field is not text: {exc}") from None
    try:
        return parse_kline_event(frame).open_time, frame
    except KlineParseError as exc:
        raise RowError(str(exc)) from None


def frames_after(frames: Iterable[Recorded], after_ms: int | Mapping[str, int] | None) -> Iterator[Recorded]:
    """The frames that happened after ``after_ms`` (all of them when it is None; those of unknown time always).

    A mapping holds one resume point per series (``{"BTCUSDT:1m": ms, ...}``; ``"*"`` for every other
    series): each series goes on after its own newest stored event, never after another's."""
    if after_ms is None:
        return iter(frames)
    if isinstance(after_ms, Mapping):
        return (rec for rec in frames if rec.at_ms is None or rec.at_ms > resume_point(after_ms, rec.series, default=-1))
    return (rec for rec in frames if rec.at_ms is None or rec.at_ms > after_ms)


def resume_point(points: Mapping[str, int] | int | None, series: str, default=None):
    """The resume point of one series: its own, else the one for all series, else ``default``."""
    if points is None or isinstance(points, int):
        return default if points is None else points
    return points.get(series, points.get(ALL_SERIES, default))


def pace(frames: Iterable[Recorded], speed: float, *, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> Iterator[Recorded]:
    """Yield frames no faster than ``speed`` × the recording's own pace (``inf``: as fast as possible); a frame
    of unknown time is yielded at once."""
    start_wall: float | None = None
    start_at = 0
    for rec in frames:
        if not math.isinf(speed) and rec.at_ms is not None:
            if start_wall is None:
                start_wall, start_at = clock(), rec.at_ms
            due = start_wall + (rec.at_ms - start_at) / 1000.0 / speed
            delay = due - clock()
            if delay > 0:
                sleep(delay)
        yield rec
