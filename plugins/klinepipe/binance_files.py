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

    A row that is not a valid candle raises ``KlineParseError`` naming the file, the row and what is wrong."""
    symbol, interval = series_of(path)
    for n, row in enumerate(_rows(path), 1):
        if not row or not row[0].strip().isdigit():
            continue  # header
        try:
            yield row_to_kline(row, symbol, interval, event_time_ms)
        except (KlineParseError, ValueError, IndexError) as exc:
            raise KlineParseError(f"{path.name} row {n}: {exc}") from None


def row_to_kline(row: list[str], symbol: str, interval: str, event_time_ms: int) -> Kline:
    """A 12-column kline row (REST or file) as a closed candle, checked like a streamed one."""
    open_time, close_time = _ms(row[0]), _ms(row[6])
    return checked(Kline(symbol, interval, open_time, close_time, str(row[1]), str(row[2]), str(row[3]), str(row[4]), str(row[5]),
                 _opt(row, 7), int(row[8]) if len(row) > 8 and str(row[8]).strip() else None, _opt(row, 9), _opt(row, 10),
                 True, event_time_ms))


def _rows(path: Path) -> Iterator[list[str]]:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                if name.endswith(".csv"):
                    with z.open(name) as f:
                        yield from csv.reader(io.TextIOWrapper(f, "utf-8"))
    else:
        with (gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")) as f:
            yield from csv.reader(f)


def _ms(value) -> int:
    v = int(value)
    return v // 1000 if v >= 10**15 else v


def _opt(row: list, i: int) -> str | None:
    return str(row[i]) if len(row) > i and str(row[i]).strip() else None
