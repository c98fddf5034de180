"""Data-quality checks over ``market.candles``, recorded in ``etl.quality_checks`` (SQL, exact numerics).

Checks, per series, over its candles opened within ``lookback`` of its newest one:
- ``gaps``: closed candles missing between two closed candles (fixed-length intervals);
- ``overlaps``: a candle opening before the previous one closed, or not aligned to its interval;
- ``ohlc``: low <= open, close <= high and volume >= 0, checked on the stored decimals;
- ``staleness``: nothing ingested for the series for longer than ``stale_after``.
Each failing check names the series and the times; a run with failures fails its task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import Engine

from klinepipe.intervals import INTERVAL_MS, VARIABLE_LENGTH

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

_SERIES = """
SELECT symbol, interval, max(open_time) - %(lookback)s, max(ingested_at), now() - max(ingested_at)
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


def run_quality_checks(engine: Engine, *, lookback: timedelta = timedelta(days=30),
                       stale_after: timedelta = timedelta(minutes=10)) -> list[CheckResult]:
    """Run every check on every series; store and return the results."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute(_SERIES, {"lookback": lookback})
            results = []
            for symbol, interval, since, last_ingest, age in cur.fetchall():
                results += _check_series(cur, symbol, interval, since)
                results.append(CheckResult("staleness", symbol, interval, age <= stale_after,
                                           {"last_ingested_at": last_ingest.isoformat(), "age_s": int(age.total_seconds())}))
            cur.executemany(
                "INSERT INTO etl.quality_checks (check_name, symbol, interval, passed, details) VALUES (%s, %s, %s, %s, %s)",
                [(r.check, r.symbol, r.interval, r.passed, json.dumps(r.details, default=str)) for r in results],
            )
        raw.commit()
    finally:
        raw.close()
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
