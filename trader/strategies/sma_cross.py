"""Long-only SMA crossover: buy when the fast SMA crosses above the slow one, sell when it crosses below.

The cross is strict, as ``backtesting.lib.crossover``: ``fast[-2] < slow[-2] and fast[-1] > slow[-1]``.
Rows where either average is not defined yet never signal. It needs the specs ``sma(fast)`` and
``sma(slow)`` (columns ``sma_<fast>``, ``sma_<slow>``), any periods. The SMAs are the exact decimal means of
the closes, correctly rounded (``klinepipe.rolling``), so two means that exact arithmetic finds equal are
equal here too, and a tie is never a cross.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from klinepipe.feature_specs import FeatureSpec
from trader.strategies.base import Action, Constraint, Param, Strategy, need_spec
from trader.strategies.signals import column, crossed_above, crossed_below, price_tie, to_signals


class SmaCross(Strategy):
    name = "sma_cross"
    warmup = 2
    declared_params = {"fast": Param(10, "fast SMA period", low=2, high=500),
                       "slow": Param(30, "slow SMA period", low=3, high=1000)}
    constraints = (Constraint("fast < slow", lambda p: p["fast"] < p["slow"]),)
    column_prefix = "sma"
    exact = True  # SMAs are exact decimal means: a tie is an exact tie (tolerance 0); an EMA is not (see signals.py)

    def __init__(self, fast: int = 10, slow: int = 30) -> None:
        super().__init__(fast=fast, slow=slow)
        self.specs = (need_spec(self.name, self.column_prefix, fast), need_spec(self.name, self.column_prefix, slow))
        self.fast_col, self.slow_col = (s.columns[0] for s in self.specs)
        self.required_features = (self.fast_col, self.slow_col) if self.exact else ("close", self.fast_col, self.slow_col)

    def feature_specs(self) -> tuple[FeatureSpec, ...]:
        return self.specs

    def signals(self, frame: pd.DataFrame) -> np.ndarray:
        fast, slow = column(frame, self.fast_col), column(frame, self.slow_col)
        tol = 0.0 if self.exact else price_tie(column(frame, "close"))
        return to_signals(crossed_above(fast, slow, tol), crossed_below(fast, slow, tol))

    def reason(self, action: Action) -> str:
        if action is Action.BUY:
            return f"{self.fast_col} crossed above {self.slow_col}"
        if action is Action.SELL:
            return f"{self.fast_col} crossed below {self.slow_col}"
        return ""
