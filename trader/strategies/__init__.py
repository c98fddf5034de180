"""Strategy registry: name -> class. The bundled strategies, plus a user's from the directory named by
``TRADER_STRATEGY_DIR`` once ``register_strategy_dir`` loaded them (``trader.strategies.user_dir``).
Strategies are chosen and parametrised in config (sleeves); backtests build them through the same
``build_strategy``, which refuses an unknown or invalid parameter by name."""

from __future__ import annotations

from pathlib import Path

from trader.strategies.base import Strategy, check_params, check_values
from trader.strategies.bollinger_breakout import BollingerBreakout
from trader.strategies.ema_cross import EmaCross
from trader.strategies.macd_trend import MacdTrend
from trader.strategies.rsi_reversion import RsiReversion
from trader.strategies.sma_cross import SmaCross

BUNDLED: dict[str, type[Strategy]] = {cls.name: cls for cls in (SmaCross, EmaCross, RsiReversion, MacdTrend, BollingerBreakout)}
REGISTRY: dict[str, type[Strategy]] = dict(BUNDLED)


def register_strategy_dir(path: Path) -> list[str]:
    """Load the user's strategies in ``path`` into ``REGISTRY`` beside the bundled ones; their names.
    ``StrategyLoadError`` (one line: the file and what is wrong with it) on a bad file or a clash."""
    from trader.strategies.user_dir import load_strategy_dir

    found = load_strategy_dir(path, reserved=BUNDLED)
    REGISTRY.update(found)
    return sorted(found)


def strategy_class(name: str) -> type[Strategy]:
    try:
        return REGISTRY[name]
    except KeyError:
        hint = " (a strategy of your own loads from TRADER_STRATEGY_DIR)" if REGISTRY.keys() == BUNDLED.keys() else ""
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(REGISTRY))}{hint}") from None


def build_strategy(name: str, **params) -> Strategy:
    cls = strategy_class(name)
    return cls(**check_params(cls, params))


def check_grid(name: str, grid: dict[str, list]) -> None:
    """Every value of a sweep's grid on its own (``ValueError`` naming it); points breaking a constraint between
    parameters (``fast < slow``) are left to the sweep, which reports them as invalid rows."""
    cls = strategy_class(name)
    for key, values in grid.items():
        for value in values if isinstance(values, list) else [values]:
            check_values(cls, {key: value})
