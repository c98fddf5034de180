"""What a restart of ``make run``'s memory-only broker or of the streaming sidecar loses, and how it is had again.

* A new embedded broker holds nothing: the offsets stored for the last one are dropped (``forget_offsets``).
* A restarted replay goes on after the newest replayed candle stored, per series (``replay_resume_point``).
* Live mode: the candles published but not stored before a restart are requested over REST, one
  ``backfill_klines`` history load per interval over the hole, once the feed is back (``fill_lost_candles``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from devstack.supervisor import private_log
from klinepipe.airflow_conn import dead_letter_topic, klines_topic
from klinepipe.db import make_engine
from klinepipe.binance.intervals import interval_ms


def forget_offsets(database_url: str) -> int:
    """Drop the stored Kafka offsets of the pipeline's topics; return how many there were.

    For a new embedded broker only: it keeps nothing across restarts, so the offsets stored in the last run
    point into a log that no longer exists. Its offsets start again at 0, and tansu answers a fetch past the
    end of a log with nothing at all (no out-of-range error a consumer could reset on), so the loader would
    skip every new message below the old offset. The topic id stored with each offset catches that too
    (``read_offsets``); this also covers offsets stored before ids were recorded."""
    topics = [klines_topic(), dead_letter_topic()]
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            return conn.execute(sa.text("DELETE FROM etl.kafka_offsets WHERE topic = ANY(:t)"), {"t": topics}).rowcount
    finally:
        engine.dispose()


def replay_resume_point(database_url: str) -> str:
    """Where a new replay goes on, per series: ``BTCUSDT:1m=<epoch ms>,...``, each the newest replayed event
    stored for that series (``""`` when none). One point for all series would skip, in every series but the
    newest, everything between its own last candle and the other series' newest."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT symbol, interval, (extract(epoch FROM max(event_time)) * 1000)::bigint"
                                        " FROM market.candles WHERE source = 'replay'"
                                        " GROUP BY symbol, interval ORDER BY symbol, interval").fetchall()
    finally:
        engine.dispose()
    return ",".join(f"{symbol}:{interval}={newest}" for symbol, interval, newest in rows)


def newest_per_series(database_url: str) -> dict[tuple[str, str], datetime]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT symbol, interval, max(open_time) FROM market.candles GROUP BY 1, 2")
            return {(symbol, interval): newest for symbol, interval, newest in rows}
    finally:
        engine.dispose()


def lost_ranges(database_url: str, before: dict[tuple[str, str], datetime]) -> dict[tuple[str, str], tuple | None]:
    """For each series with a candle stored after its ``before`` newest: the open-time range [start, end) between
    them that is missing (``None``: nothing missing). Series not yet resumed are left out."""
    if not before:
        return {}
    keys = list(before)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT c.symbol, c.interval, min(c.open_time) FROM market.candles c"
                " JOIN unnest(CAST(:symbols AS text[]), CAST(:intervals AS text[]), CAST(:newest AS timestamptz[]))"
                " AS b(symbol, interval, newest) ON c.symbol = b.symbol AND c.interval = b.interval"
                " AND c.open_time > b.newest GROUP BY 1, 2"),
                {"symbols": [k[0] for k in keys], "intervals": [k[1] for k in keys], "newest": [before[k] for k in keys]})
            resumed = {(symbol, interval): first for symbol, interval, first in rows}
    finally:
        engine.dispose()
    out = {}
    for key, first in resumed.items():
        start = before[key] + timedelta(milliseconds=interval_ms(key[1]))
        out[key] = (start, first) if first > start else None
    return out


def fill_lost_candles(env: dict, database_url: str, before: dict[tuple[str, str], datetime], why: str,
                      stop: threading.Event, *, logs: Path, cwd: Path, timeout: float = 600.0) -> None:
    """Wait (up to ``timeout``) for each series to have a candle newer than before the loss, then trigger one
    ``backfill_klines`` history load per interval over the hole. A failure is one line: the hourly gap search
    still finds the hole."""
    deadline, holes, pending = time.monotonic() + timeout, {}, dict(before)
    while pending and time.monotonic() < deadline and not stop.wait(2.0):
        try:
            found = lost_ranges(database_url, pending)
        except sa.exc.OperationalError:
            continue  # PostgreSQL is away: ask again
        for key, hole in found.items():
            del pending[key]
            if hole is not None:
                holes[key] = hole
    by_interval: dict[str, list] = {}
    for (symbol, interval), hole in holes.items():
        by_interval.setdefault(interval, []).append((symbol, *hole))
    if not by_interval:
        print(f"backfill: {why}: no candle lost", flush=True)
    airflow = str(Path(sys.executable).parent / "airflow")
    for interval, series in by_interval.items():
        symbols = sorted(s for s, _, _ in series)
        start, end = min(h[1] for h in series), max(h[2] for h in series)
        conf = {"symbols": symbols, "interval": interval, "start": start.isoformat(), "end": end.isoformat()}
        with private_log(logs / "airflow-cli.log") as out:
            done = subprocess.run([airflow, "dags", "trigger", "backfill_klines", "--conf", json.dumps(conf)], cwd=cwd,
                                  env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        result = "requested" if done.returncode == 0 else f"could not be requested (see {logs / 'airflow-cli.log'})"
        print(f"backfill: {why}: {interval} candles of {','.join(symbols)} missing in [{start.isoformat()},"
              f" {end.isoformat()}): a REST history load {result}", flush=True)
