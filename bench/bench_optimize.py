"""Optimiser speed on a year of 1-minute candles (525,600 bars), against vectorbt in the same run.

(a) One SMA 10/30 backtest, next-open fills, no fees: klinepipe's fills + metrics against vectorbt's
    ``Portfolio.from_signals`` on the very same signals (and, end to end, each computing its own SMAs); the trades
    must be identical. Goal: >= 2x.
(b) A 200-point grid (fast 5..50 step 5 x slow 60..250 step 10, total return): klinepipe's optimiser (grid sampler,
    studies in PostgreSQL, both cores) against vectorbt's broadcast grid (``MA.run`` over 200 columns, one
    ``from_signals`` over them); the best point must be the same. Goal: at least as fast on 2 cores.
(c) Optuna (TPE, studies in PostgreSQL): trials per second, and the share of the wall time spent outside the
    strategy's own computation (indicators, signals, fills, metrics): Optuna's sampling and storage, our plumbing.
    Goal: < 20 %. Processes (what the CLI and DAG use) and Optuna's ``n_jobs`` threads are both measured.

vectorbt is a bench-only dependency (``bench/requirements.txt``, installed by ``make bench``); numba's compile time
is kept out of its figures by a warm-up on a small input. Run: ``python -m bench optimize``
(``BENCH_OPTIMIZE_PARTS=c python -m bench optimize``: part (c) alone, without vectorbt).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

FAST, SLOW = list(range(5, 55, 5)), list(range(60, 260, 10))
GRID_SPACE = {"fast": {"int": [5, 50], "step": 5}, "slow": {"int": [60, 250], "step": 10}, "constraints": ["fast < slow"]}
TPE_SPACE = {"fast": {"int": [5, 50]}, "slow": {"int": [60, 250]}, "constraints": ["fast < slow"]}
TPE_TRIALS = 40
GOAL_A, GOAL_B, GOAL_C = 2.0, 1.0, 0.20


def _best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _vbt():
    warnings.simplefilter("ignore")
    import vectorbt as vbt

    return vbt


def vbt_portfolio(vbt, candles: pd.DataFrame, entries, exits):
    """Signals on a close fill at the next open: shift the signals one bar and trade at that bar's open."""
    close = pd.Series(candles["close"].to_numpy())
    shift = lambda s: pd.DataFrame(s).shift(1, fill_value=False) if np.ndim(s) == 2 else pd.Series(s).shift(1, fill_value=False)  # noqa: E731
    return vbt.Portfolio.from_signals(close, shift(entries), shift(exits), price=pd.Series(candles["open"].to_numpy()),
                                      fees=0.0, init_cash=10_000.0, freq="1min")


def part_a(vbt, candles: pd.DataFrame) -> tuple[list[str], bool]:
    from trader.backtest.engine import FillModel
    from trader.backtest.runner import feature_frame, run_backtest, run_signals, strategy_signals
    from trader.strategies import build_strategy

    model, strategy = FillModel(fee_bps=0), build_strategy("sma_cross", fast=10, slow=30)
    signals = strategy_signals(strategy, feature_frame(candles, strategy))
    entries, exits = signals == 1, signals == -1
    vbt_portfolio(vbt, candles.iloc[:500], entries[:500], exits[:500]).total_return()  # numba compiles here
    ours_s, ours = _best_of(lambda: run_signals(candles, signals, model, interval_ms=60_000), 5)

    def vbt_run():
        pf = vbt_portfolio(vbt, candles, entries, exits)
        return pf, (pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown())

    vbt_s, (pf, _) = _best_of(vbt_run, 5)
    e2e_ours, _ = _best_of(lambda: run_backtest(candles, strategy, model, interval_ms=60_000), 3)

    def vbt_e2e():
        close = pd.Series(candles["close"].to_numpy())
        f, s = vbt.MA.run(close, 10), vbt.MA.run(close, 30)
        p = vbt_portfolio(vbt, candles, f.ma_crossed_above(s).to_numpy(), f.ma_crossed_below(s).to_numpy())
        return p.total_return(), p.sharpe_ratio(), p.max_drawdown()

    vbt_e2e()
    e2e_vbt, _ = _best_of(vbt_e2e, 3)
    rec = pf.trades.records
    fills = ours.fills
    ours_trades = list(zip(fills.entry_bar.tolist(), fills.exit_bar.tolist()))
    vbt_trades = [(int(e), int(x) if s == 1 else -1) for e, x, s in zip(rec["entry_idx"], rec["exit_idx"], rec["status"])]
    same = ours_trades == vbt_trades and abs(ours.summary["final_equity"] - float(pf.final_value())) < 1e-6 * 10_000
    lines = [f"(a) one backtest, SMA 10/30, {len(candles):,} bars, {len(ours_trades):,} trades, next-open fills, no fees",
             f"    same signals: klinepipe fills+metrics {ours_s * 1e3:.1f} ms, vectorbt from_signals+metrics "
             f"{vbt_s * 1e3:.1f} ms -> {vbt_s / ours_s:.2f}x; trades identical: {same}",
             f"    end to end (each its own SMAs): klinepipe {e2e_ours * 1e3:.1f} ms, vectorbt {e2e_vbt * 1e3:.1f} ms"
             f" -> {e2e_vbt / e2e_ours:.2f}x"]
    return lines, same and vbt_s / ours_s >= GOAL_A


def _request(database_url: str, study: str, **kw):
    from trader.backtest.engine import FillModel
    from trader.backtest.optimize.run import OptimizeRequest

    return OptimizeRequest(out_dir=Path("/tmp") / study, storage=database_url, study=study, strategy="sma_cross",
                           objective="profit", min_trades=0, model=FillModel(fee_bps=0), html=False, png=False,
                           symbol="BTCUSDT", interval="1m", **kw)


def part_b(vbt, candles: pd.DataFrame, database_url: str) -> tuple[list[str], bool]:
    from trader.backtest.optimize.run import execute

    fw, sw = np.repeat(FAST, len(SLOW)), np.tile(SLOW, len(FAST))

    def vbt_grid(c: pd.DataFrame):
        close = pd.Series(c["close"].to_numpy())
        f, s = vbt.MA.run(close, window=fw, short_name="fast"), vbt.MA.run(close, window=sw, short_name="slow")
        pf = vbt_portfolio(vbt, c, f.ma_crossed_above(s).to_numpy(), f.ma_crossed_below(s).to_numpy())
        returns = pf.total_return().to_numpy()
        k = int(np.argmax(returns))
        return {"fast": int(fw[k]), "slow": int(sw[k])}, float(returns[k])

    vbt_grid(candles.iloc[:2000])  # numba compiles here
    t0 = time.perf_counter()
    vbt_best, vbt_return = vbt_grid(candles)
    vbt_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = execute(_request(database_url, f"bench-grid-{os.getpid()}", space=GRID_SPACE, folds=0, sampler="grid",
                            workers=2, trials=2), candles=candles)
    ours_s = time.perf_counter() - t0
    best_return = ours["folds"][0]["in_sample"]
    same = ours["best_params"] == vbt_best and abs(best_return - 100 * vbt_return) < 1e-6
    lines = [f"(b) grid of {len(fw)} points (fast {FAST[0]}..{FAST[-1]} x slow {SLOW[0]}..{SLOW[-1]}), total return",
             f"    klinepipe optimiser (grid, PostgreSQL studies, 2 processes): {ours_s:.2f} s "
             f"({len(fw) / ours_s:.0f} points/s); vectorbt broadcast grid: {vbt_s:.2f} s -> {vbt_s / ours_s:.2f}x",
             f"    best: klinepipe {ours['best_params']} {best_return:.4f} %, vectorbt {vbt_best} {100 * vbt_return:.4f} %;"
             f" same best point: {same}"]
    return lines, same and vbt_s / ours_s >= GOAL_B


def part_c(candles: pd.DataFrame, database_url: str) -> tuple[list[str], bool]:
    from trader.backtest.optimize.run import execute, prepare
    from trader.backtest.optimize.study import run_trials

    lines, ok = [f"(c) Optuna TPE, {TPE_TRIALS} trials, sma_cross fast 5..50 x slow 60..250, whole year per trial"], True
    for workers in (1, 2):
        req = _request(database_url, f"bench-tpe{workers}-{os.getpid()}", space=TPE_SPACE, folds=0, trials=TPE_TRIALS,
                       workers=workers)
        res = execute(req, candles=candles)
        wall, compute = res["trials_s"], res["compute_s"]  # the trials alone: not study creation nor the report
        outside = 1 - compute / (wall * workers)
        ok &= outside < GOAL_C
        lines.append(f"    {workers} process{'es' if workers > 1 else ''}: {TPE_TRIALS / wall:.2f} trials/s ({wall:.2f} s), "
                     f"outside the strategy's computation {100 * outside:.1f} % of the time")
    req = _request(database_url, f"bench-tpe-threads-{os.getpid()}", space=TPE_SPACE, folds=0, trials=TPE_TRIALS)
    p = prepare(req, candles=candles)
    ev = p.evaluator()
    t0 = time.perf_counter()
    run_trials(p.storage, p.names[0], ev, p.setup, (0, len(candles)), TPE_TRIALS, threads=2)
    wall = time.perf_counter() - t0
    lines.append(f"    Optuna n_jobs=2 (threads, one process): {TPE_TRIALS / wall:.2f} trials/s ({wall:.2f} s)")
    return lines, ok


def main() -> int:
    """Every part by default; ``BENCH_OPTIMIZE_PARTS=c`` (any of ``abc``) runs only those (part c needs no vectorbt)."""
    from bench.bench_backtest import year_of_candles
    from bench.services import database

    parts = os.environ.get("BENCH_OPTIMIZE_PARTS", "abc").lower()
    vbt = _vbt() if {"a", "b"} & set(parts) else None
    load0 = os.getloadavg()
    candles = year_of_candles()
    print(f"load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; cores {os.cpu_count()}; "
          f"vectorbt {vbt.__version__ if vbt else 'not used'}; parts {parts}", flush=True)
    ok = {}
    if "a" in parts:
        lines, ok["a"] = part_a(vbt, candles)
        print("\n".join(lines), flush=True)
    with database() as database_url:
        if "b" in parts:
            lines, ok["b"] = part_b(vbt, candles, database_url)
            print("\n".join(lines), flush=True)
        if "c" in parts:
            lines, ok["c"] = part_c(candles, database_url)
            print("\n".join(lines), flush=True)
    load1 = os.getloadavg()
    print(f"load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    goals = {"a": f"(a) >= {GOAL_A:.0f}x with identical trades", "b": f"(b) >= {GOAL_B:.0f}x with the same best point",
             "c": f"(c) < {100 * GOAL_C:.0f} % outside"}
    print("goals: " + "; ".join(f"{goals[k]}: {'met' if v else 'NOT met'}" for k, v in ok.items()))
    return 0 if all(ok.values()) else 1

if __name__ == "__main__":
    sys.exit(main())
