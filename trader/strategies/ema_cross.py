"""Long-only EMA crossover: the SMA crossover's rules over exponential averages (specs ``ema(fast)``, ``ema(slow)``);
two EMAs within ``TIE`` of the close of each other are tied, and a tie never crosses (``trader.strategies.signals``)."""

from __future__ import annotations

from trader.strategies.base import Param
from trader.strategies.sma_cross import SmaCross


class EmaCross(SmaCross):
    name = "ema_cross"
    declared_params = {"fast": Param(10, "fast EMA period", low=2, high=500),
                       "slow": Param(30, "slow EMA period", low=3, high=1000)}
    column_prefix = "ema"
    exact = False  # an EMA is not exactly representable: values within price_tie of each other are tied
