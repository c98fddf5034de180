"""Binance kline files (data.binance.vision monthly/daily zips, or their CSVs) -> closed ``Kline``s (pure I/O on local files).

File names tell the series: ``BTCUSDT-1h-2023-10-27.zip`` / ``.csv`` (``1mo`` stands for ``1M``).
Spot files have no header (futures files do); spot files from 2025 on use microsecond times, older ones
milliseconds: the unit is detected per row.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from klinepipe.errors import KlineParseError
from klinepipe.kline import Kline, checked

_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\d+(?:s|m|h|d|w|mo|M))(?:-|\.)")


def series_of(path: Path) -> tuple[str, str]:
    m = _NAME.match(path.name)
    if not m:
        raise ValueError(f"{path.name!r} is not named like SYMBOL-INTERVAL[-DATE].zip|csv")
    interval = m["interval"]
    return m["symbol"], "1M" if interval == "1mo" else interval


def read_kline_file(path: Path, event_time_ms: int) -> Iterator[Kline]:
    """Every row of a kline zip, CSV or gzipped CSV as a closed candle (``event_time`` = when it was imported).

    Whatever the file's bytes, what is not a valid candle raises ``KlineParseError`` naming the file, the row
    and what is wrong: a bad row, text that is not UTF-8, a damaged zip or gzip. Only a CSV's first row may be
    a header (its first field not a number); any later row must be a candle."""
    symbol, interval = series_of(path)
    try:
        for n, row in _rows(path):
            if not row or (n == 1 and not row[0].strip().isdigit()):
                continue  # a blank line or the header
            try:
                yield row_to_kline(row, symbol, interval, event_time_ms)
            except KlineParseError as exc:
                raise KlineParseError(f"{path.name} row {n}: {exc}") from None
    except _UNREADABLE as exc:
        raise KlineParseError(f"{path.name}: not a readable kline file: {type(exc).__name__}: {exc}") from None


# What reading damaged or non-text files raises (UnicodeDecodeError is a ValueError; zlib.error for a bad deflate stream).
_UNREADABLE = (OSError, EOFError, ValueError, csv.Error, zipfile.BadZipFile, zlib.error, NotImplementedError)


def row_to_kline(row: list, symbol: str, interval: str, event_time_ms: int) -> Kline:
    """A 12-column kline row (REST or file) as a closed candle, checked like a streamed one; ``KlineParseError``
    for anything else (too few columns, a time or count that is not a whole number, a value that is not text)."""
    if not isinstance(row, (list, tuple)) or len(row) < 7:
        raise KlineParseError(f"not a kline row of at least 7 columns: {_short(row)}")
    trades = _whole(row[8], "trades") if len(row) > 8 and _present(row[8]) else None
    return checked(Kline(symbol, interval, _ms(row[0], "open time"), _ms(row[6], "close time"), _text(row[1]),
                         _text(row[2]), _text(row[3]), _text(row[4]), _text(row[5]), _opt(row, 7), trades,
                         _opt(row, 9), _opt(row, 10), True, event_time_ms))


def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(row number, fields) of every CSV in the file."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith(".csv"):
                    with z.open(name) as f:
                        yield from enumerate(csv.reader(io.TextIOWrapper(f, "utf-8", newline="")), 1)
    else:
        with (gzip.open(path, "rt", encoding="utf-8", newline="") if path.suffix == ".gz"
              else open(path, encoding="utf-8", newline="")) as f:
            yield from enumerate(csv.reader(f), 1)


_MAX_DIGITS = 19  # a bigint


def _whole(value, name: str) -> int:
    """A whole number from a file (ASCII digits) or a REST row (a JSON integer)."""
    if type(value) is int and 0 <= value < 2**63:
        return value
    if isinstance(value, str):
        digits = value.strip()
        if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_DIGITS:
            return int(digits)
    raise KlineParseError(f"{name} is not a whole number: {_short(value)}")


def _ms(value, name: str) -> int:
    v = _whole(value, name)
    return v // 1000 if v >= 10**15 else v


def _text(value) -> str:
    """A price or volume: REST and files give text; anything else is shown as it is and fails the decimal check."""
    return value if isinstance(value, str) else _short(value)


def _present(value) -> bool:
    return not (isinstance(value, str) and not value.strip())


def _opt(row: list, i: int) -> str | None:
    return _text(row[i]) if len(row) > i and _present(row[i]) else None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
