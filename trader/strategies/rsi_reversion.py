"""RSI mean reversion: buy when RSI falls into the oversold zone, sell when it rises into the overbought one.

Needs the spec ``rsi(period)`` (column ``rsi_<period>``).
BUY on the row where ``rsi_<period>`` crosses below ``lower`` (from at or above it); SELL where it crosses
above ``upper``. Rows before the RSI is defined never signal. An RSI within ``OSCILLATOR_TIE`` of a level is at
the level, not past it (``trader.strategies.signals``): float noise does not decide.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader.strategies.base import Action, Constraint, Param, Strategy, need_spec
from trader.strategies.signals import OSCILLATOR_TIE, column, entered_above, entered_below, to_signals


class RsiReversion(Strategy):
    name = "rsi_reversion"
    warmup = 2
    declared_params = {"period": Param(14, "RSI period (spec rsi(period))", low=2, high=500),
                       "lower": Param(30.0, "oversold level: buy on entering below it", low=0, high=100),
                       "upper": Param(70.0, "overbought level: sell on entering above it", low=0, high=100)}

    constraints = (Constraint("lower < upper", lambda p: p["lower"] < p["upper"]),)

    def __init__(self, period: int = 14, lower: float = 30, upper: float = 70) -> None:
        super().__init__(period=period, lower=lower, upper=upper)
        self.col = need_spec(self.name, "rsi", period).columns[0]
        self.required_features = (self.col,)

    def signals(self, frame: pd.DataFrame) -> np.ndarray:
        rsi = column(frame, self.col)
        lower, upper = self.params["lower"], self.params["upper"]
        return to_signals(entered_below(rsi, lower, OSCILLATOR_TIE), entered_above(rsi, upper, OSCILLATOR_TIE))

    def reason(self, action: Action) -> str:
        if action is Action.BUY:
            return f"{self.col} fell below {self.params['lower']}"
        if action is Action.SELL:
            return f"{self.col} rose above {self.params['upper']}"
        return ""
