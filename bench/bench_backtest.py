"""Backtest speed: one year of 1-minute candles (525,600 bars) with the SMA crossover, against backtesting.py.

Data: the bundled real BTCUSDT 1m candles (30,899 bars), concatenated end to end until there are
525,600: each copy is rescaled so that it starts where the previous one ended, and open times run on
minute by minute. File loading is excluded from the timings; "end to end" is features
(``klinepipe.features``, all v2 columns) + strategy signals + fills + metrics. Report rendering is
timed separately. backtesting.py 0.6.6 runs the same crossover (its own SMA, ``trade_on_close=False``)
on the same data in the same process, and its trades are checked to equal ours.

Run: ``python -m bench backtest`` (or ``make bench``). Quiet machines give the fairest numbers: the
load average is printed at the start and the end.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

BARS = 525_600
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "BTCUSDT-1m.csv.gz"
GOAL_BARS_PER_S, GOAL_RATIO = 2_000_000, 20.0


def year_of_candles(bars: int = BARS) -> pd.DataFrame:
    """Real 1m candles, chained copies rescaled for continuity, re-timed minute by minute."""
    from trader.backtest.candles import read_kline_file

    one = read_kline_file(SAMPLE)
    copies, level, prices = -(-bars // len(one)), 1.0, []
    ohlc = one[["open", "high", "low", "close"]].to_numpy()
    for _ in range(copies):
        prices.append(ohlc * level)
        level *= ohlc[-1, 3] / ohlc[0, 0]
    ohlc_all = np.concatenate(prices)[:bars]
    start = int(one["open_time"].iloc[0])
    return pd.DataFrame({"open_time": start + 60_000 * np.arange(bars, dtype=np.int64), "open": ohlc_all[:, 0],
                         "high": ohlc_all[:, 1], "low": ohlc_all[:, 2], "close": ohlc_all[:, 3],
                         "volume": np.tile(one["volume"].to_numpy(), copies)[:bars]})


def time_ours(candles: pd.DataFrame, repeats: int = 7) -> tuple[list[float], dict, object]:
    from trader.backtest.engine import FillModel, simulate
    from trader.backtest.metrics import summarise
    from trader.backtest.runner import feature_frame, run_backtest, strategy_signals
    from trader.strategies import build_strategy

    model, strategy = FillModel(fee_bps=10), build_strategy("sma_cross", fast=10, slow=30)
    run_backtest(candles, strategy, model, interval_ms=60_000)  # warm-up (imports, caches)
    totals = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = run_backtest(candles, strategy, model, interval_ms=60_000)
        totals.append(time.perf_counter() - t0)
    parts, t = {}, time.perf_counter()
    frame = feature_frame(candles, strategy)
    parts["features"], t = time.perf_counter() - t, time.perf_counter()
    signals = strategy_signals(strategy, frame)
    parts["signals"], t = time.perf_counter() - t, time.perf_counter()
    fills = simulate(candles["open"].to_numpy(), candles["close"].to_numpy(), signals, model)
    parts["fills"], t = time.perf_counter() - t, time.perf_counter()
    summarise(fills, candles["open_time"].to_numpy(), candles["close"].to_numpy(), model.cash, 60_000)
    parts["metrics"] = time.perf_counter() - t
    return totals, parts, result


def peak_traced_mb(candles: pd.DataFrame) -> float:
    from trader.backtest.engine import FillModel
    from trader.backtest.runner import run_backtest

    tracemalloc.start()
    run_backtest(candles, "sma_cross", FillModel(fee_bps=10), interval_ms=60_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def time_backtesting_py(candles: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    def sma(values, n):
        return pd.Series(values).rolling(n).mean().to_numpy()

    class SmaCross(Strategy):
        def init(self):
            self.f, self.s = self.I(sma, self.data.Close, 10), self.I(sma, self.data.Close, 30)

        def next(self):
            if crossover(self.f, self.s):
                if not self.position:
                    self.buy()
            elif crossover(self.s, self.f):
                self.position.close()

    data = pd.DataFrame({"Open": candles["open"], "High": candles["high"], "Low": candles["low"], "Close": candles["close"],
                         "Volume": candles["volume"]}).set_index(pd.to_datetime(candles["open_time"], unit="ms", utc=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        stats = Backtest(data, SmaCross, cash=1e15, commission=0.001, trade_on_close=False).run()
        return time.perf_counter() - t0, stats._trades


def time_report(result) -> float:
    from trader.backtest.outputs import write_outputs

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        write_outputs(result, out)
        return time.perf_counter() - t0


def main() -> int:
    load0 = os.getloadavg()
    candles = year_of_candles()
    totals, parts, result = time_ours(candles)
    rss_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    traced = peak_traced_mb(candles)
    report_s = time_report(result)
    bt_s, bt_trades = time_backtesting_py(candles)
    best, median = min(totals), statistics.median(totals)
    ours = result.trades
    same = (len(ours) == len(bt_trades) and list(ours["entry_time"]) == list(bt_trades["EntryTime"])
            and list(ours["exit_time"]) == list(bt_trades["ExitTime"]))
    print(f"load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; cores {os.cpu_count()}")
    print(f"data: {len(candles):,} 1m bars (bundled BTCUSDT 1m x{-(-BARS // 30_899)}, chained), {len(ours):,} closed trades")
    print(f"ours end to end (features+signals+fills+metrics), {len(totals)} runs: best {best * 1e3:.1f} ms, "
          f"median {median * 1e3:.1f} ms -> {len(candles) / best:,.0f} bars/s (median {len(candles) / median:,.0f})")
    print("  breakdown: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in parts.items()))
    print(f"  report files (trades/equity csv, summary, report.html, equity.png; not in the figure above): {report_s:.2f} s")
    print(f"backtesting.py 0.6.6 same data and strategy: {bt_s:.2f} s -> {len(candles) / bt_s:,.0f} bars/s")
    print(f"speed-up vs backtesting.py: {bt_s / best:.1f}x (median run {bt_s / median:.1f}x); trades identical: {same}")
    print(f"peak memory: traced allocations of one backtest {traced:.0f} MiB; process max RSS after ours {rss_ours:.0f} MiB, "
          f"after backtesting.py {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    load1 = os.getloadavg()
    print(f"load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    ok = len(candles) / best >= GOAL_BARS_PER_S and bt_s / best >= GOAL_RATIO and same
    print(f"goals (>= {GOAL_BARS_PER_S:,} bars/s, >= {GOAL_RATIO:.0f}x, identical trades): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
