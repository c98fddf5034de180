"""Long-only EMA crossover: the SMA crossover's rules over exponential averages (specs ``ema(fast)``, ``ema(slow)``)."""

from __future__ import annotations

from trader.strategies.base import Param
from trader.strategies.sma_cross import SmaCross


class EmaCross(SmaCross):
    name = "ema_cross"
    declared_params = {"fast": Param(10, "fast EMA period"), "slow": Param(30, "slow EMA period")}
    column_prefix = "ema"
