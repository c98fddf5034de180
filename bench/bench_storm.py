"""A backfill storm: N one-minute candles (default 20M) into the partitioned ``market.candles``, features for all
of it, then the Trading page's and the README's queries timed at that size.

Data: the bundled real 1-minute files (BTCUSDT spot + four USD-M series, 111k candles) repeated: each file's
rows again under more symbol names, and for each name again and again back in time (each copy shifted by the
file's span, so every series is one unbroken minute history over many monthly partitions; prices jump where
two copies meet). Set ``BENCH_STORM_CANDLES`` for another size (e.g. 200000 while developing), and
``BENCH_STORM_FLOORS=0`` to skip the floors (and so the ratios): load, features and page timings only.

Path: from files through the file import's merge (``backfill.load_klines``: newest per candle, COPY, guarded
merge, one transaction per 50k chunk), not from the topic: the embedded tansu broker keeps every message in
memory (20M events are ~7 GB) and publishing alone takes minutes. The partitions for the range are made first,
as a history load does (``ensure_partitions``), so no row goes through the default partition.

Order: the loader's floor, the loader, the features, the page timings, the features' floor.

Floors, measured in the same run on the same rows: the loader's is PostgreSQL alone (the same 50k-chunk COPY +
guarded merge + commit, buffers built before the clock starts, nothing else running; run before the loader); the features' is its write
side alone (the same windows' DELETE + binary COPY into ``market.features``, the rows computed before the clock starts),
the serial part of a full recompute whose reads and computing overlap the writes. A second features floor adds the
reads PostgreSQL must also serve (the candles' COPY out, window by window on a second connection, while the rows are
written): on 2 cores shared with other work the reads take CPU from the writes, so the full recompute is also shown
against that floor.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import msgspec
import sqlalchemy as sa

from bench.bench_ingest import FILES, SAMPLE
from bench.pages import add_sleeve, time_pages
from bench.services import CpuBudget, services
from klinepipe.backfill import load_klines
from klinepipe.binance_files import read_klines_from_file
from klinepipe.candle_store import copy_buffer, merge_copy
from klinepipe.db import make_engine
from klinepipe.feature_set import DEFAULT_SET
from klinepipe.feature_store import WINDOW_ROWS, compute_pending_features, write_series
from klinepipe.feature_windows import read_windows, series_windows
from klinepipe.kline import Kline

CANDLES = int(os.environ.get("BENCH_STORM_CANDLES", "20000000"))
# BENCH_STORM_FLOORS=0: only load, compute the features and time the pages (no floors, no ratios): the page
# timings at a size in a third of the time
FLOORS = os.environ.get("BENCH_STORM_FLOORS", "1") != "0"
MAX_BLOCKS = 36   # copies of a file back in time per name: BTCUSDT 36 x 21 days ~ 2 years, the futures ~ 1.4
CHUNK = 50_000    # load_klines' chunk
LOADER_GOAL, FEATURES_GOAL = 0.85, 0.90


def _real() -> dict[str, list[Kline]]:
    now = int(time.time() * 1000)
    return {p.split("/")[-1].split("-")[0]: list(read_klines_from_file(SAMPLE / p, now)) for p in FILES}


def _plan(real: dict[str, list[Kline]], n: int) -> tuple[int, int]:
    copies = math.ceil(n / sum(map(len, real.values())))
    blocks = min(MAX_BLOCKS, copies)
    return math.ceil(copies / blocks), blocks


def storm(real: dict[str, list[Kline]], n: int) -> Iterator[Kline]:
    """``n`` candles: per name, per block back in time, the file's rows shifted; series after series."""
    names, blocks = _plan(real, n)
    left = n
    for copy in range(names):
        for base, klines in real.items():
            symbol = base if copy == 0 else f"{base[:-4]}S{copy}USDT"
            span = klines[-1].open_time - klines[0].open_time + 60_000
            for b in range(blocks - 1, -1, -1):   # oldest first, as a backfill writes
                shift = b * span
                for k in klines:
                    if left == 0:
                        return
                    left -= 1
                    yield msgspec.structs.replace(k, symbol=symbol, open_time=k.open_time - shift,
                                                  close_time=k.close_time - shift)


def _range(real: dict[str, list[Kline]], n: int) -> tuple[datetime, datetime]:
    _, blocks = _plan(real, n)
    first = min(k[0].open_time - (blocks - 1) * (k[-1].open_time - k[0].open_time + 60_000) for k in real.values())
    last = max(k[-1].open_time for k in real.values())
    return tuple(datetime.fromtimestamp(t / 1000, timezone.utc) for t in (first, last))


def _load(engine, real, n: int) -> tuple[int, float, CpuBudget]:
    with CpuBudget() as cpu:
        t = time.perf_counter()
        changed = load_klines(engine, storm(real, n), source="file")
        elapsed = time.perf_counter() - t
    return changed, elapsed, cpu


def _loader_floor(engine, real, n: int) -> float:
    """PostgreSQL alone: the same chunks COPY-ed and merged, each committed, into the empty partitions. Run first
    (then emptied for the loader), so the loader, not the floor, meets PostgreSQL's WAL segments recycled: in a
    fresh database the first pass also creates them, which made it 3x slower at 200k candles."""
    raw = engine.raw_connection()
    spent = 0.0
    try:
        with raw.cursor() as cur:
            cur.execute("CHECKPOINT")
            klines = storm(real, n)
            while chunk := list(itertools.islice(klines, CHUNK)):
                buffer = copy_buffer((k, "file") for k in chunk)
                t = time.perf_counter()
                merge_copy(cur, buffer)
                raw.commit()
                spent += time.perf_counter() - t
        return spent
    finally:
        raw.close()


def _features_floor(engine) -> tuple[int, float, float, float]:
    """The full recompute's PostgreSQL work alone, series by series in one transaction, into an emptied
    market.features, twice: its writes alone (the same windows' DELETE + COPY, computed before the clock starts),
    then its reads and writes (each series' windows read by COPY on a second connection, as the recompute reads
    them, while its rows, computed before the clock starts, are written). Returns rows, the read + compute +
    encode time alone, the writes alone and the reads + writes."""
    raw, reader = engine.raw_connection(), engine.raw_connection()
    rows = read_s = write_s = both_s = 0
    try:
        with raw.cursor() as cur, reader.cursor() as rcur, ThreadPoolExecutor(1) as pool:
            cur.execute("SELECT symbol, interval, min(open_time), max(open_time) FROM market.candles WHERE is_closed"
                        " GROUP BY 1, 2 ORDER BY 1, 2")
            spans = cur.fetchall()
            rcur.execute("SET LOCAL enable_sort = off")  # as the recompute's reader
            for alone in (True, False):
                cur.execute("TRUNCATE market.features")
                raw.commit()
                cur.execute("CHECKPOINT")
                for span in spans:
                    t = time.perf_counter()
                    windows = list(series_windows(cur, *span, DEFAULT_SET, WINDOW_ROWS))
                    read_s += time.perf_counter() - t if alone else 0.0
                    t = time.perf_counter()
                    reading = None if alone else pool.submit(_read_all, rcur, span)
                    rows += sum(w.rows for w in windows) if alone else 0
                    for w in windows:
                        write_series(cur, w)
                    if reading is not None:
                        reading.result()
                    spent = time.perf_counter() - t
                    write_s, both_s = (write_s + spent, both_s) if alone else (write_s, both_s + spent)
                t = time.perf_counter()
                raw.commit()
                spent = time.perf_counter() - t
                write_s, both_s = (write_s + spent, both_s) if alone else (write_s, both_s + spent)
        return rows, read_s, write_s, both_s
    finally:
        reader.rollback()
        reader.close()
        raw.close()


def _read_all(cur, span) -> int:
    return sum(len(chunk["open_time"]) for chunk, _, _ in read_windows(cur, *span, DEFAULT_SET.warmup, WINDOW_ROWS))


def _load_line() -> str:
    return "load average " + " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min)"


def main() -> int:
    real = _real()
    names, blocks = _plan(real, CANDLES)
    first, last = _range(real, CANDLES)
    print(f"data: the bundled real 1m files ({sum(map(len, real.values())):,} candles, {len(real)} series) repeated under"
          f" {names} name(s) each and {blocks} copies back in time per name (shifted by each file's span):"
          f" {CANDLES:,} candles, {first:%Y-%m-%d} .. {last:%Y-%m-%d}")
    print("path: from files through the file import's merge (backfill.load_klines), not the topic: the embedded"
          " broker is memory-only")
    print(f"start: {_load_line()}")
    with services() as (url, _):
        engine = make_engine(url)
        from klinepipe.partitions import ensure_partitions
        t = time.perf_counter()
        made = ensure_partitions(engine, first, last)
        print(f"partitions: {made} made for the range in {time.perf_counter() - t:.1f}s")
        if FLOORS:
            floor_s = _loader_floor(engine, real, CANDLES)
            print(f"loader PG floor      : COPY + guarded merge + commit of the same {CHUNK:,}-row chunks alone {floor_s:.1f}s ="
                  f" {CANDLES / floor_s:10,.0f} candles/s; {_load_line()}")
            with engine.begin() as c:
                c.exec_driver_sql("TRUNCATE market.candles, market.series_summary, etl.features_pending")
                c.exec_driver_sql("CHECKPOINT")
        changed, load_s, cpu = _load(engine, real, CANDLES)
        print(f"loader (files)       : {changed:,} candles in {load_s:7.1f}s = {changed / load_s:10,.0f} candles/s; {_load_line()}")
        print(f"  its {cpu.line(changed, 'candles')}")
        with engine.begin() as c:
            c.exec_driver_sql("CHECKPOINT")
        with CpuBudget() as fcpu:
            t = time.perf_counter()
            frows = sum(u.rows for u in compute_pending_features(engine))
            feat_s = time.perf_counter() - t
        print(f"features full        : {frows:,} rows in {feat_s:7.1f}s = {frows / feat_s:10,.0f} rows/s; {_load_line()}")
        print(f"  its {fcpu.line(frows, 'rows')}")
        symbol = next(iter(real))
        add_sleeve(engine, symbol)
        with engine.connect() as c:
            stored = c.execute(sa.text("SELECT sum(candles) FROM market.series_summary")).scalar()
            month = c.execute(sa.text("SELECT date_trunc('month', min(open_time) + (max(open_time) - min(open_time)) / 2) FROM market.candles"
                                      " WHERE symbol = :s"), {"s": symbol}).scalar()
        print(f"page refreshes at {stored:,} candles (and as many feature rows), {symbol} charted; {_load_line()}")
        pages_ok = time_pages(engine, symbol, month)
        if not FLOORS:
            engine.dispose()
            print(f"floors skipped (BENCH_STORM_FLOORS=0); pages p95 < 100 ms: {'pass' if pages_ok else 'FAIL'}")
            return 0
        frows2, fread_s, fwrite_s, fboth_s = _features_floor(engine)
        assert frows2 == frows, (frows2, frows)
        print(f"features PG floor    : writes alone (DELETE + COPY into market.features) {fwrite_s:.1f}s ="
              f" {frows / fwrite_s:10,.0f} rows/s (read + compute + encode alone {fread_s:.1f}s); {_load_line()}")
        print(f"features PG floor 2  : reads + writes (the candles' COPY out on a second connection while the rows are"
              f" written) {fboth_s:.1f}s = {frows / fboth_s:10,.0f} rows/s; {_load_line()}")
        engine.dispose()
    loader_ratio, features_ratio, features_ratio2 = floor_s / load_s, fwrite_s / feat_s, fboth_s / feat_s
    print(f"ratio: loader {loader_ratio:.0%} of its PostgreSQL floor (goal >= {LOADER_GOAL:.0%}:"
          f" {'met' if loader_ratio >= LOADER_GOAL else 'not met'}); features {features_ratio:.0%} of its floor"
          f" (goal >= {FEATURES_GOAL:.0%}: {'met' if features_ratio >= FEATURES_GOAL else 'not met'}), {features_ratio2:.0%}"
          f" of its reads + writes floor;"
          f" pages p95 < 100 ms: {'pass' if pages_ok else 'FAIL'}")
    return 0
