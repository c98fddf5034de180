"""Features: full recompute over ~1M stored candles, and an incremental run (100 series x 5 new candles).

Data: the bundled real 1-minute klines relabelled under extra symbol names (the values are real).
The incremental run happens on top of the million stored candles, as in a deployment with history.
Reported: compute-only rows/s (``compute_features`` on arrays); end-to-end rows/s of
``compute_pending_features`` (binary COPY out of PostgreSQL, compute, binary COPY straight into
``market.features``, NOTIFY; reading/computing overlapped with writing); and, to show where the time
goes, its two halves timed alone on one thread: read + compute + encode, and the writes alone.
"""

from __future__ import annotations

import time

import numpy as np
import sqlalchemy as sa

from bench.bench_ingest import FILES, SAMPLE
from bench.services import CpuBudget, services
from klinepipe.backfill import load_klines
from klinepipe.binance_files import read_klines_from_file
from klinepipe.db import make_engine
from klinepipe import FEATURE_SET_VERSION
from klinepipe.feature_set import DEFAULT_SET
from klinepipe.feature_store import _PENDING, compute_pending_features, write_series
from klinepipe.feature_windows import compute_series
from klinepipe.features import compute_features
from klinepipe.kline import Kline

FULL_ROWS = 1_000_000
SERIES, NEW = 100, 5


def _real() -> dict[str, list[Kline]]:
    return {path.split("/")[-1].split("-")[0]: list(read_klines_from_file(SAMPLE / path, 0)) for path in FILES}


def _relabel(klines: list[Kline], symbol: str) -> list[Kline]:
    return [Kline(symbol, k.interval, k.open_time, k.close_time, k.open, k.high, k.low, k.close, k.volume, k.quote_volume,
                  k.trades, k.taker_buy_base_volume, k.taker_buy_quote_volume, True, k.close_time + 1) for k in klines]


def _full(url: str, real: dict[str, list[Kline]]) -> None:
    engine = make_engine(url)
    rows, copy = 0, 0
    t = time.perf_counter()
    while rows < FULL_ROWS:
        for symbol, klines in real.items():
            take = klines[: FULL_ROWS - rows]
            load_klines(engine, _relabel(take, f"{symbol[:-4]}X{copy}USDT"), source="replay")
            rows += len(take)
        copy += 1
    print(f"loaded {rows:,} real candles in {time.perf_counter() - t:.1f}s")
    closes = [np.array([float(k.close) for k in ks]) for ks in real.values()]
    arrays = np.concatenate(closes)
    big = np.tile(arrays, FULL_ROWS // len(arrays) + 1)[:FULL_ROWS]
    t = time.perf_counter()
    compute_features(big, big * 1.001, big * 0.999, big)
    compute_s = time.perf_counter() - t
    with engine.begin() as c:
        c.exec_driver_sql("CHECKPOINT")
    with CpuBudget() as cpu:
        t = time.perf_counter()
        updates = compute_pending_features(engine)
        full_s = time.perf_counter() - t
    done = sum(u.rows for u in updates)
    read_s, write_s = _halves(engine)
    engine.dispose()
    print(f"compute only         : {FULL_ROWS:,} rows in {compute_s:5.2f}s = {FULL_ROWS / compute_s:12,.0f} rows/s")
    print(f"full recompute (DB)  : {done:,} rows in {full_s:5.2f}s = {done / full_s:12,.0f} rows/s (goal >= 1,000,000)")
    print(f"  its {cpu.line(done, 'rows')}")
    print(f"  its halves alone   : read + compute + encode {read_s:.2f}s, write (DELETE + COPY into market.features) {write_s:.2f}s")


def _halves(engine) -> tuple[float, float]:
    """The full recompute's read side and write side, each timed alone on one thread."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("TRUNCATE market.features")
            raw.commit()
            cur.execute("CHECKPOINT")
            cur.execute(_PENDING, {"v": FEATURE_SET_VERSION})
            pending = cur.fetchall()
            t = time.perf_counter()
            computed = [compute_series(cur, *p, DEFAULT_SET) for p in pending]
            read_s = time.perf_counter() - t
            t = time.perf_counter()
            for c in computed:
                write_series(cur, c)
            raw.commit()
            return read_s, time.perf_counter() - t
    finally:
        raw.close()


def _incremental(url: str, real: dict[str, list[Kline]]) -> None:
    """100 series x 5 new candles, on top of the full recompute's million candles: finding the work must not
    grow with the history (it comes from the merge queue, ``etl.features_pending``)."""
    engine = make_engine(url)
    base = real["BTCUSDT"]
    history = [_relabel(base[: 1100], f"S{i:03d}USDT") for i in range(SERIES)]
    load_klines(engine, [k for h in history for k in h], source="replay")
    compute_pending_features(engine)
    fresh = [_relabel(base[1100 : 1100 + NEW], f"S{i:03d}USDT") for i in range(SERIES)]
    load_klines(engine, [k for f in fresh for k in f], source="replay")
    t = time.perf_counter()
    updates = compute_pending_features(engine)
    inc_s = time.perf_counter() - t
    with engine.connect() as c:
        total = c.execute(sa.text("SELECT count(*) FROM market.candles")).scalar()
    engine.dispose()
    print(f"incremental          : {SERIES} series x {NEW} new candles ({sum(u.rows for u in updates)} rows, "
          f"{total:,} candles stored) in {inc_s:.3f}s (goal < 1 s)")


def main() -> int:
    real = _real()
    with services() as (url, _):
        _full(url, real)
        _incremental(url, real)
    return 0
