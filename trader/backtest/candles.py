"""Candles for backtests: Binance kline files (CSV, ``.gz``, ``.zip``) -> one numeric frame.

The frame has ``open_time`` (epoch ms, int64) and float64 ``open``, ``high``, ``low``, ``close``,
``volume``, oldest first, open times strictly increasing. Files use Binance's 12 kline columns
(``open_time,open,high,low,close,volume,close_time,...``); a header row is optional and times may be
in milliseconds or, as in data.binance.vision files since 2025, microseconds.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from klinepipe.binance.rows import BinanceKlineRow, series_from_file_name
from klinepipe.binance.times import MICROSECONDS_FROM, datetime_to_ms, parse_utc

CANDLE_COLUMNS = BinanceKlineRow.__struct_fields__[:6]  # ("open_time", "open", "high", "low", "close", "volume")


def read_kline_file(path: str | Path) -> pd.DataFrame:
    """Read a 12-column Binance kline file into a candle frame (see module doc)."""
    path = Path(path)
    with _open_binary(path) as f:
        data = f.read()
    first = data.split(b"\n", 1)[0].split(b",", 1)[0].strip()
    frame = pd.read_csv(io.BytesIO(data), header=None, skiprows=0 if first.isdigit() else 1, usecols=range(6),
                        names=list(CANDLE_COLUMNS), dtype={"open_time": np.int64, **{c: np.float64 for c in CANDLE_COLUMNS[1:]}})
    return normalise_candles(frame)


def normalise_candles(frame: pd.DataFrame) -> pd.DataFrame:
    """Times to ms, columns in order, checked: strictly increasing open times, no missing prices."""
    out = frame.loc[:, list(CANDLE_COLUMNS)].reset_index(drop=True)
    times = out["open_time"].to_numpy(dtype=np.int64)
    out["open_time"] = np.where(times >= MICROSECONDS_FROM, times // 1000, times)  # binance.times.epoch_ms, vectorised
    if len(out) > 1 and not (np.diff(out["open_time"].to_numpy()) > 0).all():
        raise ValueError("candle open times must be strictly increasing (duplicates or unsorted rows)")
    if out[list(CANDLE_COLUMNS[1:5])].isna().to_numpy().any():
        raise ValueError("candles with missing prices")
    return out


def slice_candles(candles: pd.DataFrame, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Candles with ``start <= open_time < end`` (either bound optional)."""
    times = candles["open_time"].to_numpy()
    lo = 0 if start is None else int(np.searchsorted(times, datetime_to_ms(start), side="left"))
    hi = len(times) if end is None else int(np.searchsorted(times, datetime_to_ms(end), side="left"))
    return candles.iloc[lo:hi].reset_index(drop=True)


def series_from_name(path: str | Path) -> tuple[str, str]:
    """``BTCUSDT-1m.csv.gz`` -> ``("BTCUSDT", "1m")``; ``("", "")`` when the name does not say."""
    try:
        return series_from_file_name(Path(path).name)
    except ValueError:
        return "", ""


def infer_interval_ms(candles: pd.DataFrame) -> int:
    """The most common step between open times (60,000 for 1m candles)."""
    times = candles["open_time"].to_numpy()
    if len(times) < 2:
        return 60_000
    steps, counts = np.unique(np.diff(times), return_counts=True)
    return int(steps[np.argmax(counts)])


def parse_time(text: str | None) -> datetime | None:
    """``2024-03-01`` or ``2024-03-01T12:00`` (UTC unless an offset is given) -> aware datetime."""
    return parse_utc(text) if text else None


def _open_binary(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    if path.suffix == ".zip":
        archive = zipfile.ZipFile(path)
        members = [n for n in archive.namelist() if n.endswith(".csv")] or archive.namelist()
        return archive.open(members[0])
    return open(path, "rb")
