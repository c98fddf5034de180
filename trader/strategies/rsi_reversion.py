"""RSI mean reversion: buy when RSI falls into the oversold zone, sell when it rises into the overbought one.

Needs the spec ``rsi(period)`` (column ``rsi_<period>``).
BUY on the row where ``rsi_<period>`` crosses below ``lower`` (from at or above it); SELL where it crosses
above ``upper``. Rows before the RSI is defined never signal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader.strategies.base import Action, Param, Strategy, need_spec
from trader.strategies.signals import column, to_signals


class RsiReversion(Strategy):
    name = "rsi_reversion"
    warmup = 2
    declared_params = {"period": Param(14, "RSI period (spec rsi(period))"),
                       "lower": Param(30, "oversold level: buy on entering below it"),
                       "upper": Param(70, "overbought level: sell on entering above it")}

    def __init__(self, period: int = 14, lower: float = 30, upper: float = 70) -> None:
        if not 0 < lower < upper < 100:
            raise ValueError(f"rsi_reversion needs 0 < lower < upper < 100, got lower={lower} upper={upper}")
        super().__init__(period=period, lower=lower, upper=upper)
        self.col = need_spec(self.name, "rsi", period).columns[0]
        self.required_features = (self.col,)

    def signals(self, frame: pd.DataFrame) -> np.ndarray:
        rsi = column(frame, self.col)
        prev = np.concatenate(([np.nan], rsi[:-1]))
        lower, upper = self.params["lower"], self.params["upper"]
        return to_signals((prev >= lower) & (rsi < lower), (prev <= upper) & (rsi > upper))

    def reason(self, action: Action) -> str:
        if action is Action.BUY:
            return f"{self.col} fell below {self.params['lower']}"
        if action is Action.SELL:
            return f"{self.col} rose above {self.params['upper']}"
        return ""
