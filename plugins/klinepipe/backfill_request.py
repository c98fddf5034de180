"""What a ``backfill_klines`` run was asked to do, read from its params (pure: no I/O but the file glob).

One of three requests: an import of local files, a history load of symbols × interval over [start, end),
or (no params) the scheduled gap fill. A param that cannot mean anything raises ``ConfigError`` naming it,
before any request is sent or any row is written.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from klinepipe.errors import ConfigError
from klinepipe.intervals import INTERVAL_MS


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


def backfill_request(params: dict) -> ImportFiles | LoadHistory | FillGaps:
    files, symbols = (params.get("files") or "").strip(), params.get("symbols") or []
    if files:
        paths = tuple(sorted(Path(p) for p in glob.glob(files)))
        if not paths:
            raise ConfigError(f"files: {files!r} matches no file (a glob of data.binance.vision .zip/.csv files)")
        return ImportFiles(paths)
    if symbols:
        bad = [s for s in symbols if not str(s).strip().isalnum()]
        if bad:
            raise ConfigError(f"symbols: {bad} are not Binance symbols such as BTCUSDT")
        interval = params.get("interval") or "1m"
        if interval not in INTERVAL_MS:
            raise ConfigError(f"interval: unknown {interval!r}; valid: {', '.join(INTERVAL_MS)}")
        start, end = _time(params, "start"), _time(params, "end")
        if start >= end:
            raise ConfigError(f"start ({start.isoformat()}) must be before end ({end.isoformat()})")
        return LoadHistory(tuple(str(s).strip().upper() for s in symbols), interval, start, end)
    for name in ("start", "end"):
        if params.get(name):
            raise ConfigError(f"{name} is set but symbols is empty: name the symbols to load history for")
    days = params.get("lookback_days", 7)
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise ConfigError(f"lookback_days: expected a whole number of days >= 1, got {days!r}")
    return FillGaps(days)


def parse_utc(value: str | datetime) -> datetime:
    """An ISO 8601 time (``2024-03-01``, ``2024-03-01T00:00:00Z``; UTC unless it says) as an aware datetime;
    ``ValueError`` when it is not one."""
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _time(params: dict, name: str) -> datetime:
    value = params.get(name)
    if not value:
        raise ConfigError(f"{name}: a history load needs start and end (UTC), e.g. 2024-03-01T00:00:00Z")
    try:
        return parse_utc(value)
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not an ISO 8601 time such as 2024-03-01T00:00:00Z") from None
