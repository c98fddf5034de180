"""Long-only SMA crossover: buy when the fast SMA crosses above the slow one, sell when it crosses below.

The cross is strict, as ``backtesting.lib.crossover``: ``fast[-2] < slow[-2] and fast[-1] > slow[-1]``.
Rows where either average is not defined yet never signal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader.strategies.base import BUY, HOLD, SELL, Action, Strategy


class SmaCross(Strategy):
    name = "sma_cross"
    warmup = 2

    def __init__(self, fast: int = 10, slow: int = 30) -> None:
        if not 0 < fast < slow:
            raise ValueError(f"sma_cross needs 0 < fast < slow, got fast={fast} slow={slow}")
        super().__init__(fast=fast, slow=slow)
        self.fast_col, self.slow_col = f"sma_{fast}", f"sma_{slow}"
        self.required_features = (self.fast_col, self.slow_col)

    def signals(self, frame: pd.DataFrame) -> np.ndarray:
        fast = frame[self.fast_col].to_numpy(dtype=np.float64)
        slow = frame[self.slow_col].to_numpy(dtype=np.float64)
        out = np.full(len(fast), HOLD, dtype=np.int8)
        if len(fast) < 2:
            return out
        f0, f1, s0, s1 = fast[:-1], fast[1:], slow[:-1], slow[1:]
        out[1:][(f0 < s0) & (f1 > s1)] = BUY  # NaN compares False: no signal while warming up
        out[1:][(f0 > s0) & (f1 < s1)] = SELL
        return out

    def reason(self, action: Action) -> str:
        if action is Action.BUY:
            return f"{self.fast_col} crossed above {self.slow_col}"
        if action is Action.SELL:
            return f"{self.fast_col} crossed below {self.slow_col}"
        return ""
