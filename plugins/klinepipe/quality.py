"""Data-quality checks over ``market.candles``, recorded in ``etl.quality_checks`` (SQL, exact numerics).

Checks, per series, over its candles opened within ``lookback`` of its newest one:
- ``gaps``: closed candles missing between two closed candles (fixed-length intervals);
- ``overlaps``: a candle opening before the previous one closed, or not aligned to its interval;
- ``ohlc``: low <= open, close <= high and volume >= 0, checked on the stored decimals;
- ``staleness``: nothing ingested for the series for longer than ``stale_after`` -- checked only for a
  series that is being streamed (see ``STREAMED``), never for imported history, which is static by design:
  a one-off file import, REST history load or replay of old candles is recorded as passed with
  ``{"streamed": false}`` so the newest result of the check says so.
Each failing check names the series and the times; a run with failures fails its task.

A series is *streamed* when it is in the configured subscriptions (``configured_streams``: the streaming
sidecar's ``STREAMING_SYMBOLS`` x ``STREAMING_INTERVALS`` when set in the environment) or when candles
arrived live: from the stream (source ``binance`` or ``replay``) within ``lookback``, ingested no later than
``stale_after`` after they closed (history replayed today closed years ago; a live or wall-clock demo
candle is ingested while it is open or seconds after it closed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import Engine

from klinepipe.binance.intervals import INTERVAL_MS, VARIABLE_LENGTH
from klinepipe.db import raw_transaction

_STEP = "(%(step)s * interval '1 millisecond')"

_GAPS = f"""
SELECT symbol, interval, open_time + {_STEP} AS missing_from, next_open - {_STEP} AS missing_to,
       (extract(epoch FROM next_open - open_time) * 1000 / %(step)s)::bigint - 1 AS missing
FROM (SELECT symbol, interval, open_time, lead(open_time) OVER (ORDER BY open_time) AS next_open
      FROM market.candles
      WHERE symbol = %(s)s AND interval = %(i)s AND is_closed AND open_time >= %(since)s) c
WHERE next_open - open_time > {_STEP}
ORDER BY open_time LIMIT 100
"""

_OVERLAPS = f"""
SELECT symbol, interval, open_time, close_time, next_open FROM (
    SELECT symbol, interval, open_time, close_time, lead(open_time) OVER (ORDER BY open_time) AS next_open
    FROM market.candles WHERE symbol = %(s)s AND interval = %(i)s AND open_time >= %(since)s) c
WHERE close_time >= next_open
   OR (%(fixed)s AND (extract(epoch FROM open_time) * 1000)::bigint %% %(step)s <> 0)
   OR (%(fixed)s AND close_time <> open_time + {_STEP} - interval '1 millisecond')
ORDER BY open_time LIMIT 100
"""

_OHLC = """
SELECT symbol, interval, open_time, open, high, low, close, volume FROM market.candles
WHERE symbol = %(s)s AND interval = %(i)s AND open_time >= %(since)s
  AND NOT (low <= open AND open <= high AND low <= close AND close <= high AND volume >= 0)
ORDER BY open_time LIMIT 100
"""

STREAM_SOURCES = ("binance", "replay")  # the ``source`` headers the streaming sidecar writes


def arrived_live_sql(window: str, within: str) -> str:
    """SQL true for a row of market.candles that arrived live: from the stream, ingested within ``window``
    of now and at most ``within`` after it closed (both bind placeholders of intervals, e.g.
    ``%(w)s`` or ``:w``). ``bool_or()`` of it over a series: the series is being streamed (the Trading page
    marks freshness with the same rule)."""
    sources = ", ".join(f"'{s}'" for s in STREAM_SOURCES)
    return f"(source IN ({sources}) AND ingested_at > now() - {window} AND ingested_at - close_time <= {within})"


_SERIES = f"""
SELECT symbol, interval, max(open_time) - %(lookback)s, max(ingested_at), now() - max(ingested_at),
       coalesce(bool_or({arrived_live_sql("%(live_window)s", "%(live_within)s")}), false)
FROM market.candles GROUP BY symbol, interval ORDER BY symbol, interval
"""


@dataclass
class CheckResult:
    check: str
    symbol: str
    interval: str
    passed: bool
    details: dict = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.check} {self.symbol} {self.interval}: {json.dumps(self.details, default=str)}"


def configured_streams(environ: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    """The series the streaming sidecar is configured to subscribe to, when its settings are in ``environ``
    (``PipelineSettings.streaming_subscriptions``: ``STREAMING_SYMBOLS=BTCUSDT,ETHUSDT``, ``STREAMING_INTERVALS=1m,1h``;
    intervals default to ``1m``);
    empty when ``STREAMING_SYMBOLS`` is not set."""
    symbols = [s.strip().upper() for s in environ.get("STREAMING_SYMBOLS", "").split(",") if s.strip()]
    intervals = [i.strip() for i in (environ.get("STREAMING_INTERVALS") or "1m").split(",") if i.strip()]
    return frozenset((s, i) for s in symbols for i in intervals)


def run_quality_checks(engine: Engine, *, lookback: timedelta = timedelta(days=30),
                       stale_after: timedelta = timedelta(minutes=10),
                       streams: Iterable[tuple[str, str]] = ()) -> list[CheckResult]:
    """Run every check on every series; store and return the results. ``streams``: (symbol, interval)
    pairs subscribed to, checked for staleness even before a live candle of theirs arrived."""
    subscribed = frozenset(streams)
    with raw_transaction(engine) as cur:
        cur.execute(_SERIES, {"lookback": lookback, "live_window": lookback, "live_within": stale_after})
        results = []
        for symbol, interval, since, last_ingest, age, arrived_live in cur.fetchall():
            results += _check_series(cur, symbol, interval, since)
            details = {"last_ingested_at": last_ingest.isoformat(), "age_s": int(age.total_seconds())}
            if arrived_live or (symbol, interval) in subscribed:
                why = "subscribed" if (symbol, interval) in subscribed else "arrived live"
                results.append(CheckResult("staleness", symbol, interval, age <= stale_after,
                                           {**details, "streamed": why}))
            else:
                results.append(CheckResult("staleness", symbol, interval, True,
                                           {**details, "streamed": False, "note": "imported history: not expected to grow"}))
        cur.executemany(
            "INSERT INTO etl.quality_checks (check_name, symbol, interval, passed, details) VALUES (%s, %s, %s, %s, %s)",
            [(r.check, r.symbol, r.interval, r.passed, json.dumps(r.details, default=str)) for r in results],
        )
    return results


def _check_series(cur, symbol: str, interval: str, since) -> list[CheckResult]:
    fixed = interval not in VARIABLE_LENGTH
    params = {"s": symbol, "i": interval, "since": since, "step": INTERVAL_MS.get(interval, 0), "fixed": fixed}
    results = []
    for name, sql in (("gaps", _GAPS), ("overlaps", _OVERLAPS), ("ohlc", _OHLC)):
        if name == "gaps" and not fixed:
            continue
        cur.execute(sql, params)
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        details = {"violations": rows[:20], "count": len(rows)} if rows else {}
        results.append(CheckResult(name, symbol, interval, not rows, details))
    return results
