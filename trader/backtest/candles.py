"""Candles for backtests: Binance kline files (CSV, ``.gz``, ``.zip``) -> one numeric frame.

The frame has ``open_time`` (epoch ms, int64) and float64 ``open``, ``high``, ``low``, ``close``,
``volume``, oldest first, open times strictly increasing. Files use Binance's 12 kline columns
(``open_time,open,high,low,close,volume,close_time,...``); a header row is optional and times may be
in milliseconds or, as in data.binance.vision files since 2025, microseconds.
"""

from __future__ import annotations

import gzip
import io
import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

CANDLE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\d+[smhdwM])")
_US_THRESHOLD = 10**15  # epoch values at or above this are microseconds


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
    out["open_time"] = np.where(times >= _US_THRESHOLD, times // 1000, times)
    if len(out) > 1 and not (np.diff(out["open_time"].to_numpy()) > 0).all():
        raise ValueError("candle open times must be strictly increasing (duplicates or unsorted rows)")
    if out[list(CANDLE_COLUMNS[1:5])].isna().to_numpy().any():
        raise ValueError("candles with missing prices")
    return out


def slice_candles(candles: pd.DataFrame, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Candles with ``start <= open_time < end`` (either bound optional)."""
    times = candles["open_time"].to_numpy()
    lo = 0 if start is None else int(np.searchsorted(times, to_ms(start), side="left"))
    hi = len(times) if end is None else int(np.searchsorted(times, to_ms(end), side="left"))
    return candles.iloc[lo:hi].reset_index(drop=True)


def series_from_name(path: str | Path) -> tuple[str, str]:
    """``BTCUSDT-1m.csv.gz`` -> ``("BTCUSDT", "1m")``; ``("", "")`` when the name does not say."""
    m = _NAME.match(Path(path).name)
    return (m["symbol"], m["interval"]) if m else ("", "")


def infer_interval_ms(candles: pd.DataFrame) -> int:
    """The most common step between open times (60,000 for 1m candles)."""
    times = candles["open_time"].to_numpy()
    if len(times) < 2:
        return 60_000
    steps, counts = np.unique(np.diff(times), return_counts=True)
    return int(steps[np.argmax(counts)])


def to_ms(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(t.timestamp() * 1000)


def parse_time(text: str | None) -> datetime | None:
    """``2024-03-01`` or ``2024-03-01T12:00`` (UTC unless an offset is given) -> aware datetime."""
    if not text:
        return None
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _open_binary(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    if path.suffix == ".zip":
        archive = zipfile.ZipFile(path)
        members = [n for n in archive.namelist() if n.endswith(".csv")] or archive.namelist()
        return archive.open(members[0])
    return open(path, "rb")
