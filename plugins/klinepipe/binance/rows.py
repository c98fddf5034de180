"""The 12-column Binance kline row: ``GET /api/v3/klines`` answers and data.binance.vision files (pure).

A real REST row (reference 3.3) and the same columns as a file line::

    [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100", "148976.11427815",
     1499644799999, "2434.19055334", 308, "1756.87402397", "28.46694368", "0"]
    1499040000000,0.01634790,0.80000000,0.01575800,0.01577100,148976.11427815,1499644799999,...

REST gives JSON numbers for times and counts and strings for money; files give text for every column, and
spot files from 2025 on give times in microseconds (``times.epoch_ms``). ``parse_kline_row`` reads either
into one ``BinanceKlineRow``; ``klinepipe.kline.row_to_kline`` checks it as a candle. Files are named
``SYMBOL-INTERVAL[-DATE].zip|csv`` (``1mo`` for ``1M``): ``series_from_file_name``.
"""

from __future__ import annotations

import re

import msgspec

from klinepipe.binance.times import MAX_TIME_MS, epoch_ms
from klinepipe.errors import KlineParseError


class BinanceKlineRow(msgspec.Struct, array_like=True, gc=False):
    """One kline row, by position as Binance sends it; times in ms; ``None`` for a column a file left empty."""

    open_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    close_time: int
    quote_volume: str | None = None
    trades: int | None = None
    taker_buy_base_volume: str | None = None
    taker_buy_quote_volume: str | None = None
    ignore: str | None = None


REQUIRED_COLUMNS = 7  # open time .. close time; the volumes and the count after them may be missing
_MAX_DIGITS = 19  # a bigint


def parse_kline_row(row) -> BinanceKlineRow:
    """A REST row (JSON values) or a file row (strings) -> ``BinanceKlineRow``; ``KlineParseError`` saying what
    is wrong for anything else (too few columns, a time or count that is not a whole number, money that is not
    text, a time past the year 9999). Values are not checked as a candle here (see ``kline.checked``)."""
    if not isinstance(row, (list, tuple)) or len(row) < REQUIRED_COLUMNS:
        raise KlineParseError(f"not a kline row of at least {REQUIRED_COLUMNS} columns: {_short(row)}")
    return BinanceKlineRow(_time(row[0], "open time"), _text(row[1], "open"), _text(row[2], "high"),
                           _text(row[3], "low"), _text(row[4], "close"), _text(row[5], "volume"),
                           _time(row[6], "close time"), _opt_text(row, 7, "q"), _opt_count(row, 8),
                           _opt_text(row, 9, "V"), _opt_text(row, 10, "Q"))


def _whole(value, name: str) -> int:
    """A whole number from a file (ASCII digits) or a REST row (a JSON integer)."""
    if type(value) is int and 0 <= value < 2**63:
        return value
    if isinstance(value, str):
        digits = value.strip()
        if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_DIGITS:
            return int(digits)
    raise KlineParseError(f"{name} is not a whole number: {_short(value)}")


def _time(value, name: str) -> int:
    ms = epoch_ms(_whole(value, name))
    if ms > MAX_TIME_MS:
        raise KlineParseError(f"{name} {ms} is past the year 9999")
    return ms


def _text(value, name: str) -> str:
    if not isinstance(value, str):
        raise KlineParseError(f"{name} is not a string: {_short(value)}")
    return value


def _present(row, i: int) -> bool:
    return len(row) > i and not (isinstance(row[i], str) and not row[i].strip())


def _opt_text(row, i: int, name: str) -> str | None:
    return _text(row[i], name) if _present(row, i) else None


def _opt_count(row, i: int) -> int | None:
    return _whole(row[i], "trades") if _present(row, i) else None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_header(row: list[str]) -> bool:
    """Whether a file's first row names its columns (futures files have one, spot files none): its first field is
    not a number. Only a first row may be a header."""
    return bool(row) and not row[0].strip().isdigit()


def row_open_time(row) -> int | None:
    """A REST kline row's open time (a JSON integer in the first column, ms), or None when the row is not one."""
    if isinstance(row, list) and row and type(row[0]) is int:
        return row[0]
    return None


def closing_event(row: BinanceKlineRow, symbol: str, interval: str) -> dict:
    """The closing kline event of a row's candle, as Binance would send it (``E`` one ms after its close);
    columns absent from the row are left out of the event rather than invented."""
    k: dict = {"t": row.open_time, "T": row.close_time, "s": symbol, "i": interval, "o": row.open, "c": row.close,
               "h": row.high, "l": row.low, "v": row.volume}
    if row.trades is not None:
        k["n"] = row.trades
    k["x"] = True
    for name, value in (("q", row.quote_volume), ("V", row.taker_buy_base_volume), ("Q", row.taker_buy_quote_volume)):
        if value is not None:
            k[name] = value
    return {"e": "kline", "E": row.close_time + 1, "s": symbol, "k": k}


# data.binance.vision names (reference 8): BTCUSDT-1h-2023-10-27.zip, BNBUSDT-1mo-2019-01.zip; recordings and
# the bundled samples: BTCUSDT-1m.csv.gz, BTCUSDT-kline_5m-ws-20210914.jsonl is not one (no interval after "-").
_FILE_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\d+(?:mo|[smhdwM]))(?:-|\.|$)")


def series_from_file_name(name: str) -> tuple[str, str]:
    """``BTCUSDT-1m.csv.gz`` -> ``("BTCUSDT", "1m")``; ``BNBUSDT-1mo-2019-01.zip`` -> ``("BNBUSDT", "1M")``;
    ``ValueError`` when the name does not say."""
    m = _FILE_NAME.match(name)
    if not m:
        raise ValueError(f"cannot tell symbol and interval from the file name {name!r}"
                         " (expected SYMBOL-INTERVAL[-DATE].csv|zip, e.g. BTCUSDT-1m-2024-01.zip)")
    interval = m["interval"]
    return m["symbol"], "1M" if interval == "1mo" else interval
