"""Parameter sweeps over a grid (both cores) and walk-forward out-of-sample tests.

Features do not depend on strategy parameters, so they are computed once; each grid point then costs
one ``signals`` call plus the fill simulation. Worker processes are forked after the candles and the
feature frame are in memory, so they share them copy-on-write instead of receiving pickles.

Walk-forward: the bars are cut into ``folds + 1`` consecutive windows; for fold ``k`` the grid is
swept on window ``k`` (in sample), the best point by ``metric`` is then traded on window ``k + 1``
(out of sample), starting flat with the equity the previous fold ended with.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import pandas as pd

from trader.backtest.engine import FillModel
from trader.backtest.runner import run_signals, strategy_signals
from trader.strategies import build_strategy

METRICS = ("total_return_pct", "cagr_pct", "max_drawdown_pct", "sharpe", "sortino", "win_rate_pct", "profit_factor",
           "exposure_pct", "trades", "fees_paid")
_SHARED: tuple | None = None  # (candles, frame, strategy name, fill model, interval ms, (first bar, end bar))


def param_grid(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, in order: ``{"a": [1, 2], "b": [3]}`` -> two dicts."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def run_sweep(candles: pd.DataFrame, frame: pd.DataFrame, strategy: str, grid: dict[str, list], model: FillModel, *,
              metric: str = "sharpe", workers: int | None = None, interval_ms: int | None = None,
              bars: tuple[int, int] | None = None, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """One row per grid point (params, metrics, ``error`` for invalid points), best ``metric`` first.

    ``progress(done, total)`` is called after each grid point (the CLI's progress bar)."""
    global _SHARED
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    points = param_grid(grid)
    _SHARED = (candles, frame, strategy, model, interval_ms, bars or (0, len(candles)))
    try:
        workers = min(workers or os.cpu_count() or 1, len(points))
        if workers <= 1:
            rows = _collect(map(_evaluate, points), len(points), progress)
        else:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                rows = _collect(pool.map(_evaluate, points), len(points), progress)
    finally:
        _SHARED = None
    table = pd.DataFrame(rows).reindex(columns=[*grid, *METRICS, "error"])
    return table.sort_values(metric, ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def _collect(results, total: int, progress: Callable[[int, int], None] | None) -> list[dict]:
    rows = []
    for row in results:
        rows.append(row)
        if progress is not None:
            progress(len(rows), total)
    return rows


def _evaluate(params: dict) -> dict:
    candles, frame, name, model, interval_ms, (a, b) = _SHARED
    try:
        signals = strategy_signals(build_strategy(name, **params), frame)[a:b]
    except Exception as exc:  # noqa: BLE001 - an invalid grid point is a row of the table, not a crash
        return {**params, "error": f"{type(exc).__name__}: {exc}"}
    summary = run_signals(candles.iloc[a:b], signals, model, interval_ms=interval_ms).summary
    return {**params, **{m: summary[m] for m in METRICS}, "error": None}


def walk_forward_windows(n_bars: int, folds: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """``folds`` pairs of (in-sample, out-of-sample) bar ranges over ``folds + 1`` equal windows."""
    if folds < 1 or n_bars < 2 * (folds + 1):
        raise ValueError(f"cannot cut {n_bars} bars into {folds} walk-forward folds")
    edges = [round(i * n_bars / (folds + 1)) for i in range(folds + 2)]
    return [((edges[k], edges[k + 1]), (edges[k + 1], edges[k + 2])) for k in range(folds)]


def run_walk_forward(candles: pd.DataFrame, frame: pd.DataFrame, strategy: str, grid: dict[str, list], model: FillModel, *,
                     folds: int = 4, metric: str = "sharpe", workers: int | None = None,
                     interval_ms: int | None = None, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """One row per fold: windows, the chosen params, in-sample metric and out-of-sample results.

    ``progress(done, total)`` is called after each fold."""
    rows, equity = [], model.cash
    for k, ((a, b), (c, d)) in enumerate(walk_forward_windows(len(candles), folds)):
        table = run_sweep(candles, frame, strategy, grid, model, metric=metric, workers=workers, interval_ms=interval_ms,
                          bars=(a, b))
        best = table[table["error"].isna()].iloc[0]
        params = {key: _plain(best[key]) for key in grid}
        oos = run_signals(candles.iloc[c:d], strategy_signals(build_strategy(strategy, **params), frame)[c:d],
                          replace(model, cash=equity), interval_ms=interval_ms).summary
        rows.append({"fold": k + 1, "train_start": _time(candles, a), "train_end": _time(candles, b),
                     "test_start": _time(candles, c), "test_end": _time(candles, d), "params": json.dumps(params),
                     f"in_sample_{metric}": best[metric], **{f"oos_{m}": oos[m] for m in METRICS},
                     "oos_final_equity": oos["final_equity"]})
        equity = oos["final_equity"]
        if progress is not None:
            progress(k + 1, folds)
    return pd.DataFrame(rows)


def _time(candles: pd.DataFrame, i: int) -> str:
    times = candles["open_time"].to_numpy()
    ms = times[i] if i < len(times) else times[-1] + (times[-1] - times[-2])
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def _plain(value):
    return value.item() if hasattr(value, "item") else value
