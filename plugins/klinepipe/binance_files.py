"""Binance kline files (data.binance.vision monthly/daily zips, or their CSVs) -> closed ``Kline``s (local files only).

File names tell the series (``klinepipe.binance.rows.series_from_file_name``: ``BTCUSDT-1h-2023-10-27.zip``,
``1mo`` for ``1M``). Spot files have no header (futures files do); spot files from 2025 on use microsecond
times, older ones milliseconds: the unit is detected per row (``binance.times.epoch_ms``).
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from klinepipe.binance.rows import is_header, series_from_file_name
from klinepipe.errors import KlineParseError
from klinepipe.kline import Kline, row_to_kline


def read_klines_from_file(path: Path, event_time_ms: int) -> Iterator[Kline]:
    """Every row of a kline zip, CSV or gzipped CSV as a closed candle (``event_time`` = when it was imported).

    Whatever the file's bytes, what is not a valid candle raises ``KlineParseError`` naming the file, the row
    and what is wrong: a bad row, text that is not UTF-8, a damaged zip or gzip. Only a CSV's first row may be
    a header (its first field not a number); any later row must be a candle."""
    symbol, interval = series_from_file_name(path.name)
    try:
        for n, row in _rows(path):
            if not row or (n == 1 and is_header(row)):
                continue  # a blank line or the header
            try:
                yield row_to_kline(row, symbol, interval, event_time_ms)
            except KlineParseError as exc:
                raise KlineParseError(f"{path.name} row {n}: {exc}") from None
    except _UNREADABLE as exc:
        raise KlineParseError(f"{path.name}: not a readable kline file: {type(exc).__name__}: {exc}") from None


# What reading damaged or non-text files raises (UnicodeDecodeError is a ValueError; zlib.error for a bad deflate stream).
_UNREADABLE = (OSError, EOFError, ValueError, csv.Error, zipfile.BadZipFile, zlib.error, NotImplementedError)


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
