"""One parameter set, scored (pure: arrays in, numbers out): indicators from a cache, the strategy's signals, fills, metrics.

``IndicatorCache`` computes each feature column once per process, with the features DAG's own function, and hands
every later parameter set that needs it the same array: ``sma_cross(10, 30)`` and ``sma_cross(10, 50)`` share
``sma_10``. Signals are computed over the whole history once per parameter set (they are causal, so a window's
signals equal those of the history up to it) and sliced to each window, as the sweeps do.

Objectives (higher is better): ``sharpe``, ``sortino``, ``calmar`` (CAGR over the maximum drawdown, both in
percent) and ``profit`` (total return in percent). A window with fewer than ``min_trades`` closed trades, or whose
ratio is undefined (no variance, no drawdown), has no score: the trial is pruned, not ranked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from klinepipe.features import compute_feature_frame
from trader.backtest.engine import FillModel
from trader.backtest.runner import run_signals, strategy_signals
from trader.strategies import build_strategy

OBJECTIVES = ("sharpe", "sortino", "calmar", "profit")


class IndicatorCache:
    """Feature columns of one candle frame, each computed at most once (``hits`` / ``misses`` count the look-ups)."""

    def __init__(self, candles: pd.DataFrame) -> None:
        self.candles = candles
        self._columns: dict[str, np.ndarray] = {
            "open_time": pd.to_datetime(candles["open_time"].to_numpy(), unit="ms", utc=True),
            "close": candles["close"].to_numpy()}
        self.hits = self.misses = 0

    def frame(self, columns) -> pd.DataFrame:
        """``open_time`` (UTC), ``close`` and ``columns``, as the live trader's feature rows have them."""
        wanted = list(dict.fromkeys(columns))
        todo = [c for c in wanted if c not in self._columns]
        self.misses += len(todo)
        self.hits += len(wanted) - len(todo)
        if todo:
            computed = compute_feature_frame(self.candles, columns=todo)
            self._columns.update({c: computed[c].to_numpy() for c in computed.columns if c != "open_time"})
        keep = ["open_time", "close", *(c for c in wanted if c not in ("open_time", "close"))]
        return pd.DataFrame({c: self._columns[c] for c in keep}, copy=False)


def score(summary: dict, objective: str, min_trades: int) -> tuple[float | None, str]:
    """The objective of one window's summary, or ``(None, why)`` when it has none."""
    if summary["trades"] < min_trades:
        return None, f"{summary['trades']} closed trades < min_trades {min_trades}"
    if objective == "profit":
        return float(summary["total_return_pct"]), ""
    if objective == "calmar":
        dd, cagr = summary["max_drawdown_pct"], summary["cagr_pct"]
        if cagr is None or dd == 0:
            return None, "calmar undefined (no drawdown or no CAGR)"
        return float(cagr / abs(dd)), ""
    value = summary[objective]
    return (None, f"{objective} undefined (no variance)") if value is None else (float(value), "")


@dataclass
class Evaluator:
    """Scores parameter sets of one strategy on windows (bar ranges) of one candle frame."""

    candles: pd.DataFrame
    strategy: str
    model: FillModel
    objective: str = "sharpe"
    min_trades: int = 1
    interval_ms: int | None = None
    cache: IndicatorCache | None = None
    compute_s: float = field(default=0.0, init=False)  # time spent inside the strategy and the backtest

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective: {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        self.cache = self.cache or IndicatorCache(self.candles)

    def signals(self, params: dict) -> np.ndarray:
        strategy = build_strategy(self.strategy, **params)
        return strategy_signals(strategy, self.cache.frame(strategy.required_features))

    def window(self, signals: np.ndarray, bars: tuple[int, int], cash: float | None = None) -> dict:
        a, b = bars
        model = self.model if cash is None else replace(self.model, cash=cash)
        return run_signals(self.candles.iloc[a:b], signals[a:b], model, interval_ms=self.interval_ms).summary

    def evaluate(self, params: dict, bars: tuple[int, int]) -> tuple[float | None, str, dict]:
        """``(score, why-none, summary)`` of ``params`` traded on ``bars``; the time taken is added to ``compute_s``."""
        t0 = time.perf_counter()
        try:
            summary = self.window(self.signals(params), bars)
        finally:
            self.compute_s += time.perf_counter() - t0
        value, why = score(summary, self.objective, self.min_trades)
        return value, why, summary


def walk_forward_windows(n_bars: int, folds: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """``folds`` (in-sample, out-of-sample) bar ranges over ``folds + 1`` equal windows; ``folds=0``: the whole history
    in sample, nothing out of sample."""
    if folds == 0:
        return [((0, n_bars), (n_bars, n_bars))]
    from trader.backtest.sweep import walk_forward_windows as windows

    return windows(n_bars, folds)
