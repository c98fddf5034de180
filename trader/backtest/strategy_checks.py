"""What ``python -m trader check-strategy`` and the look-ahead tests check about a strategy (pure).

- Look-ahead (as freqtrade's lookahead-analysis): the whole backtest path (features, ``signals``, fills) is
  re-run with the candles from bar ``k`` on altered (reversed, or a 20 % jump); no signal and no equity
  before ``k`` may change. And each sampled signal must equal the one computed on the history ending at
  its bar (truncated history).
- Warm-up (as freqtrade's recursive-analysis): the live trader decides on the newest ``warmup`` rows only,
  so the signal on that window must equal the full-history one; the least window that reproduces every
  sampled signal is what the strategy really needs. Features computed from a later first candle show how
  many bars of history each of the strategy's features takes to settle.
Every check returns ``Finding`` lines, ``problem=True`` for what must be fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from klinepipe.features import FEATURE_COLUMNS, compute_feature_frame
from trader.backtest.engine import FillModel
from trader.backtest.runner import feature_frame, run_backtest, strategy_signals
from trader.strategies.base import Strategy

CUTS = (0.08, 0.44, 0.96)  # where the future is altered, as fractions of the candles
ALTERATIONS = ("reversed", "jump")
MAX_WARMUP = 1024  # the longest decision window the warm-up search tries
SETTLED_RTOL = 1e-9  # a feature has settled once it is this close to the full-history value


@dataclass(frozen=True)
class Finding:
    check: str  # look-ahead | warm-up | features
    line: str
    problem: bool = False


def alter_future(candles: pd.DataFrame, k: int, how: str) -> pd.DataFrame:
    """``candles`` with bars ``k`` on reversed (``reversed``) or 20 % higher (``jump``)."""
    out = candles.copy()
    cols = ["open", "high", "low", "close", "volume"]
    if how == "reversed":
        out.loc[k:, cols] = candles.loc[k:, cols].to_numpy()[::-1]
    else:
        out.loc[k:, cols[:4]] = candles.loc[k:, cols[:4]].to_numpy() * 1.2
    return out


def future_change_findings(candles: pd.DataFrame, make: Callable[[], Strategy], model: FillModel | None = None) -> list[Finding]:
    """Altering the candles from bar ``k`` on must not change a signal or the equity before ``k``."""
    model = model or FillModel(fee_bps=10)
    base = run_backtest(candles, make(), model)
    cuts = [max(1, int(len(candles) * c)) for c in CUTS]
    found = []
    for how in ALTERATIONS:
        for k in cuts:
            altered = run_backtest(alter_future(candles, k, how), make(), model)
            changed = np.flatnonzero(altered.signals[:k] != base.signals[:k])
            moved = np.flatnonzero(altered.fills.equity[:k] != base.fills.equity[:k])
            if len(changed) or len(moved):
                what = f"the signal at bar {changed[0]}" if len(changed) else f"the equity at bar {moved[0]}"
                found.append(Finding("look-ahead", f"candles from bar {k} on {how} changed {what}, before bar {k}: "
                                                   "the strategy reads the future", problem=True))
    if not found:
        found.append(Finding("look-ahead", f"altering the candles from bars {', '.join(map(str, cuts))} on "
                                           f"({', '.join(ALTERATIONS)}) changed no earlier signal or equity"))
    return found


def sample_bars(full: np.ndarray, first: int, samples: int) -> list[int]:
    """About ``samples`` evenly spaced bars from ``first`` on, plus up to ``samples`` where the signal is not HOLD
    (where a wrong decision matters and shows)."""
    acting = np.flatnonzero(full[first:]) + first
    step = max(1, (len(full) - first) // samples)
    return sorted(set(range(first, len(full), step)) | set(acting[:: max(1, len(acting) // samples)].tolist()))


def truncation_findings(frame: pd.DataFrame, strategy: Strategy, bars: Sequence[int]) -> list[Finding]:
    """Each signal in ``bars`` must be what the strategy says on the history ending at that bar."""
    full = strategy_signals(strategy, frame)
    wrong = [k for k in bars if strategy_signals(strategy, frame.iloc[: k + 1])[-1] != full[k]]
    if wrong:
        return [Finding("look-ahead", f"{len(wrong)} of {len(bars)} sampled signals differ when the history ends at their bar "
                                      f"(first: bar {wrong[0]}, full history {full[wrong[0]]:+d}): the strategy reads the future",
                        problem=True)]
    return [Finding("look-ahead", f"all {len(bars)} sampled signals equal the ones computed on the history ending at their bar")]


def window_mismatches(frame: pd.DataFrame, strategy: Strategy, full: np.ndarray, window: int, bars: Sequence[int]) -> list[int]:
    """The bars of ``bars`` whose signal on the newest ``window`` rows differs from the full-history one."""
    return [k for k in bars if strategy_signals(strategy, frame.iloc[max(0, k - window + 1): k + 1])[-1] != full[k]]


def needed_warmup(frame: pd.DataFrame, strategy: Strategy, full: np.ndarray, bars: Sequence[int], upto: int) -> int | None:
    """The least window (rows) up to ``upto`` that reproduces every signal of ``bars``; ``None``: none does."""
    if window_mismatches(frame, strategy, full, upto, bars):
        return None
    low, high = 0, upto  # high reproduces, low does not (a window of 0 rows decides nothing)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if not window_mismatches(frame, strategy, full, mid, bars) else (mid, high)
    return high


def warmup_findings(frame: pd.DataFrame, strategy: Strategy, bars: Sequence[int]) -> list[Finding]:
    """The declared ``warmup`` against the least decision window that reproduces the full-history signals."""
    full = strategy_signals(strategy, frame)
    declared = strategy.warmup
    wrong = window_mismatches(frame, strategy, full, declared, bars)
    upto = declared if not wrong else min(MAX_WARMUP, bars[0] + 1)
    needed = needed_warmup(frame, strategy, full, bars, upto)
    if not wrong:
        return [Finding("warm-up", f"declared warmup = {declared}: the signals on the newest {declared} rows equal the "
                                   f"full-history ones at all {len(bars)} sampled bars (it needs {needed})")]
    need = f"it needs warmup = {needed}" if needed else f"not even {upto} rows reproduce them (does it depend on all history?)"
    return [Finding("warm-up", f"declared warmup = {declared}, but the live trader's signals on the newest {declared} rows "
                               f"differ from the full-history ones at {len(wrong)} of {len(bars)} sampled bars (first: bar {wrong[0]}); "
                               + need, problem=True)]


def feature_settling(candles: pd.DataFrame, columns: list[str], offset: int) -> dict[str, int]:
    """Per feature column: bars of history it takes, computed from candle ``offset`` on, to be within
    ``SETTLED_RTOL`` of the full-history value (0: from its first defined value)."""
    full = compute_feature_frame(candles, columns=columns).iloc[offset:]
    late = compute_feature_frame(candles.iloc[offset:], columns=columns)
    out = {}
    for col in columns:
        a, b = full[col].to_numpy(), late[col].to_numpy()
        same = np.isclose(a, b, rtol=SETTLED_RTOL, atol=0) | (np.isnan(a) & np.isnan(b))
        off = np.flatnonzero(~same)
        out[col] = int(off[-1]) + 1 if len(off) else 0
    return out


def feature_findings(candles: pd.DataFrame, strategy: Strategy) -> list[Finding]:
    columns = [c for c in strategy.required_features if c in FEATURE_COLUMNS]
    if not columns:
        return []
    offset = len(candles) // 5
    settle = feature_settling(candles, columns, offset)
    shown = ", ".join(f"{c} {n} bars" for c, n in settle.items())
    return [Finding("features", f"history each feature needs before it equals the pipeline's full-history value: {shown} (a "
                                "backtest's first bars are that much less reliable; live features are computed over all history)")]


def check_strategy(candles: pd.DataFrame, make: Callable[[], Strategy], samples: int = 100) -> list[Finding]:
    """Every check above over ``candles`` (a few thousand bars are plenty); ``make`` builds a fresh strategy."""
    strategy = make()
    frame = feature_frame(candles, strategy)
    full = strategy_signals(strategy, frame)
    late = sample_bars(full, min(MAX_WARMUP, len(frame) // 2), samples)  # room for every window tried
    return [*future_change_findings(candles, make), *truncation_findings(frame, strategy, sample_bars(full, 0, samples)),
            *warmup_findings(frame, strategy, late), *feature_findings(candles, strategy)]
