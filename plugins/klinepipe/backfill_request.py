"""What a ``backfill_klines`` or ``import_kline_files`` run was asked to do, read from its params (pure: no
I/O but the file glob).

``backfill_request``: a history load of symbols × interval over [start, end), or (no symbols) the scheduled
gap fill. ``import_request``: an import of local files. A param that cannot mean anything raises
``KlinepipeConfigError`` naming it, before any request is sent or any row is written.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from klinepipe.binance.intervals import INTERVAL_MS
from klinepipe.binance.times import parse_utc
from klinepipe.errors import KlinepipeConfigError


@dataclass(frozen=True)
class ImportFiles:
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class LoadHistory:
    symbols: tuple[str, ...]
    interval: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class FillGaps:
    lookback_days: int


def import_request(params: dict) -> ImportFiles:
    files = (params.get("files") or "").strip()
    if not files:
        raise KlinepipeConfigError("files: name the data.binance.vision .zip/.csv files to import (a path or a glob)")
    paths = tuple(sorted(Path(p) for p in glob.glob(files)))
    if not paths:
        raise KlinepipeConfigError(f"files: {files!r} matches no file (a glob of data.binance.vision .zip/.csv files)")
    return ImportFiles(paths)


def backfill_request(params: dict) -> LoadHistory | FillGaps:
    if (params.get("files") or "").strip():
        raise KlinepipeConfigError("files: file imports are the import_kline_files DAG's job (trigger it with the same files)")
    symbols = params.get("symbols") or []
    if isinstance(symbols, str):  # the REST API or a JSON conf may send "BTCUSDT, ETHUSDT"
        symbols = [s for s in symbols.replace(",", " ").split()]
    symbols = [s for s in (str(s).strip() for s in symbols) if s]  # the form's textarea leaves empty lines
    if symbols:
        bad = [s for s in symbols if not s.isalnum()]
        if bad:
            raise KlinepipeConfigError(f"symbols: {bad} are not Binance symbols such as BTCUSDT")
        interval = params.get("interval") or "1m"
        if interval not in INTERVAL_MS:
            raise KlinepipeConfigError(f"interval: unknown {interval!r}; valid: {', '.join(INTERVAL_MS)}")
        start, end = _time(params, "start"), _time(params, "end")
        if start >= end:
            raise KlinepipeConfigError(f"start ({start.isoformat()}) must be before end ({end.isoformat()})")
        return LoadHistory(tuple(s.upper() for s in symbols), interval, start, end)
    for name in ("start", "end"):
        if params.get(name):
            raise KlinepipeConfigError(f"{name} is set but symbols is empty: name the symbols to load history for")
    days = params.get("lookback_days")
    days = 7 if days is None else days
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise KlinepipeConfigError(f"lookback_days: expected a whole number of days >= 1, got {days!r}")
    return FillGaps(days)


def _time(params: dict, name: str) -> datetime:
    value = params.get(name)
    if not value:
        raise KlinepipeConfigError(f"{name}: a history load needs start and end (UTC), e.g. 2024-03-01T00:00:00Z")
    try:
        return parse_utc(value)
    except ValueError:
        raise KlinepipeConfigError(f"{name}: {value!r} is not an ISO 8601 time such as 2024-03-01T00:00:00Z") from None
