"""Bollinger breakout: buy when the close breaks above the upper band, sell when it falls back below the middle.

Uses ``close``, ``bb_upper_20`` and ``bb_middle_20`` (20 bars, 2 standard deviations), strict crossings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader.strategies.base import Action, Strategy
from trader.strategies.signals import column, crossed_above, crossed_below, to_signals


class BollingerBreakout(Strategy):
    name = "bollinger_breakout"
    warmup = 2
    required_features = ("close", "bb_upper_20", "bb_middle_20")

    def signals(self, frame: pd.DataFrame) -> np.ndarray:
        close = column(frame, "close")
        return to_signals(crossed_above(close, column(frame, "bb_upper_20")),
                          crossed_below(close, column(frame, "bb_middle_20")))

    def reason(self, action: Action) -> str:
        return {Action.BUY: "close broke above bb_upper_20", Action.SELL: "close fell below bb_middle_20"}.get(action, "")
