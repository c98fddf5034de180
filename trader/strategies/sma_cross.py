"""Long-only SMA crossover: buy when the fast SMA crosses above the slow one, sell when it crosses below.

The cross is strict, as ``backtesting.lib.crossover``: ``fast[-2] < slow[-2] and fast[-1] > slow[-1]``.
"""

from __future__ import annotations

import math

import pandas as pd

from trader.strategies.base import Action, Signal, Strategy


class SmaCross(Strategy):
    name = "sma_cross"
    warmup = 2

    def __init__(self, fast: int = 10, slow: int = 30) -> None:
        if not 0 < fast < slow:
            raise ValueError(f"sma_cross needs 0 < fast < slow, got fast={fast} slow={slow}")
        super().__init__(fast=fast, slow=slow)
        self.fast_col, self.slow_col = f"sma_{fast}", f"sma_{slow}"
        self.required_features = (self.fast_col, self.slow_col)

    def decide(self, window: pd.DataFrame) -> Signal:
        if len(window) < 2:
            return Signal(Action.HOLD, "warming up")
        f0, f1 = window[self.fast_col].iloc[-2], window[self.fast_col].iloc[-1]
        s0, s1 = window[self.slow_col].iloc[-2], window[self.slow_col].iloc[-1]
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (f0, f1, s0, s1)):
            return Signal(Action.HOLD, "warming up")
        if f0 < s0 and f1 > s1:
            return Signal(Action.BUY, f"{self.fast_col} crossed above {self.slow_col}")
        if f0 > s0 and f1 < s1:
            return Signal(Action.SELL, f"{self.fast_col} crossed below {self.slow_col}")
        return Signal(Action.HOLD, "")
