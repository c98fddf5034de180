"""MACD trend: buy when the MACD line crosses above its signal line, sell when it crosses below.

Needs the spec ``macd(fast, slow, signal)`` (default 12/26/9: columns ``macd``, ``macd_signal``; other
periods name their columns, e.g. ``macd_8_21_5``). With ``above_zero=1`` a BUY also needs the MACD line
above zero (trend confirmation); exits are never filtered. Values within ``TIE`` of the close of each other
(zero included) are tied, and a tie never crosses (``trader.strategies.signals``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader.strategies.base import Action, Constraint, Param, Strategy, need_spec
from trader.strategies.signals import column, crossed_above, crossed_below, price_tie, side, to_signals


class MacdTrend(Strategy):
    name = "macd_trend"
    warmup = 2
    declared_params = {"fast": Param(12, "fast EMA period", low=2, high=500),
                       "slow": Param(26, "slow EMA period", low=3, high=1000),
                       "signal": Param(9, "signal line EMA period", low=2, high=500),
                       "above_zero": Param(0, "1: only buy while the MACD line is above zero", choices=(0, 1))}
    constraints = (Constraint("fast < slow", lambda p: p["fast"] < p["slow"]),)

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9, above_zero: int = 0) -> None:
        super().__init__(fast=fast, slow=slow, signal=signal, above_zero=int(above_zero))
        self.macd_col, self.signal_col, _ = need_spec(self.name, "macd", fast, slow, signal).columns
        self.required_features = ("close", self.macd_col, self.signal_col)

    def signals(self, frame: pd.DataFrame) -> np.ndarray:
        macd, sig = column(frame, self.macd_col), column(frame, self.signal_col)
        tol = price_tie(column(frame, "close"))  # MACD is in price units; ties as in signals.py
        buy = crossed_above(macd, sig, tol)
        if self.params["above_zero"]:
            buy &= side(macd, 0.0, tol) == 1.0
        return to_signals(buy, crossed_below(macd, sig, tol))

    def reason(self, action: Action) -> str:
        return {Action.BUY: f"{self.macd_col} crossed above {self.signal_col}",
                Action.SELL: f"{self.macd_col} crossed below {self.signal_col}"}.get(action, "")
