"""Bollinger breakout: buy when the close breaks above the upper band, sell when it falls back below the middle.

Needs the spec ``bbands(period, stddev)`` (default 20 bars, 2 standard deviations: ``bb_upper_20``,
``bb_middle_20``; ``bbands(20, 2.5)`` gives ``bb_upper_20_2p5``, ...) and ``close``; strict crossings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader.strategies.base import Action, Param, Strategy, need_spec
from trader.strategies.signals import column, crossed_above, crossed_below, price_tie, to_signals


class BollingerBreakout(Strategy):
    name = "bollinger_breakout"
    warmup = 2
    declared_params = {"period": Param(20, "Bollinger window in bars", low=2, high=1000),
                       "stddev": Param(2.0, "band width in standard deviations", low=0.1, high=10.0)}

    def __init__(self, period: int = 20, stddev: float = 2.0) -> None:
        super().__init__(period=period, stddev=stddev)
        self.upper_col, self.middle_col, _ = need_spec(self.name, "bbands", period, stddev).columns
        self.required_features = ("close", self.upper_col, self.middle_col)

    def signals(self, frame: pd.DataFrame) -> np.ndarray:
        close = column(frame, "close")
        # the upper band carries a float standard deviation: ties as in signals.py; the middle is the exact SMA
        return to_signals(crossed_above(close, column(frame, self.upper_col), price_tie(close)),
                          crossed_below(close, column(frame, self.middle_col)))

    def reason(self, action: Action) -> str:
        return {Action.BUY: f"close broke above {self.upper_col}",
                Action.SELL: f"close fell below {self.middle_col}"}.get(action, "")
