"""MACD trend: buy when the MACD line crosses above its signal line, sell when it crosses below.

Uses the stored ``macd`` and ``macd_signal`` (12/26/9). With ``above_zero=1`` a BUY also needs the MACD
line above zero (trend confirmation); exits are never filtered.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader.strategies.base import Action, Param, Strategy
from trader.strategies.signals import column, crossed_above, crossed_below, to_signals


class MacdTrend(Strategy):
    name = "macd_trend"
    warmup = 2
    required_features = ("macd", "macd_signal")
    declared_params = {"above_zero": Param(0, "1: only buy while the MACD line is above zero", choices=(0, 1))}

    def __init__(self, above_zero: int = 0) -> None:
        super().__init__(above_zero=int(above_zero))

    def signals(self, frame: pd.DataFrame) -> np.ndarray:
        macd, sig = column(frame, "macd"), column(frame, "macd_signal")
        buy = crossed_above(macd, sig)
        if self.params["above_zero"]:
            buy &= macd > 0
        return to_signals(buy, crossed_below(macd, sig))

    def reason(self, action: Action) -> str:
        return {Action.BUY: "macd crossed above macd_signal", Action.SELL: "macd crossed below macd_signal"}.get(action, "")
