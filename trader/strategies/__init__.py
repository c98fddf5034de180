"""Strategy registry: name -> class. Strategies are chosen and parametrised in config (``TRADER_SLEEVES``,
``TRADER_STRATEGY_PARAMS``); backtests build them through the same ``build_strategy``."""

from __future__ import annotations

from trader.strategies.base import Strategy
from trader.strategies.bollinger_breakout import BollingerBreakout
from trader.strategies.ema_cross import EmaCross
from trader.strategies.macd_trend import MacdTrend
from trader.strategies.rsi_reversion import RsiReversion
from trader.strategies.sma_cross import SmaCross

REGISTRY: dict[str, type[Strategy]] = {cls.name: cls for cls in (SmaCross, EmaCross, RsiReversion, MacdTrend, BollingerBreakout)}


def build_strategy(name: str, **params) -> Strategy:
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
    unknown = set(params) - set(cls.declared_params)
    if unknown:
        raise ValueError(f"strategy {name!r} has no parameter {', '.join(sorted(unknown))}; "
                         f"it takes: {', '.join(cls.declared_params) or 'none'}")
    return cls(**params)
