"""The strategy interface: feature rows in, signals out (pure; no I/O, no clock, no venue).

A strategy implements one vectorised, causal method, ``signals(frame)``: for every row of a series'
feature frame (oldest first) it returns +1 (BUY), -1 (SELL) or 0 (HOLD), where row ``i`` may depend
only on rows ``<= i``. The live trader calls ``decide(window)`` on the newest rows (the last signal);
backtests call ``signals`` once over the whole history. Both are the very same code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from klinepipe.feature_specs import FeatureSpec
from klinepipe.features import make_spec, specs_for_columns
from trader.errors import StrategyError

__all__ = ["BUY", "HOLD", "INTERFACE_VERSION", "SELL", "Action", "Param", "Signal", "Strategy", "StrategyError", "decide_safely",
           "need_spec"]

INTERFACE_VERSION = 2

BUY, SELL, HOLD = 1, -1, 0


class Action(str, enum.Enum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


_ACTIONS = {BUY: Action.BUY, SELL: Action.SELL, HOLD: Action.HOLD}


@dataclass(frozen=True)
class Signal:
    action: Action
    reason: str = ""


@dataclass(frozen=True)
class Param:
    """A declared strategy parameter: its default and an optional description (shown by ``--help``-like tools)."""

    default: int | float
    help: str = ""


class Strategy:
    """Base class. Subclasses set ``name``, ``warmup`` and ``required_features`` and implement ``signals``.

    The feature specs a strategy needs follow from its parameters: ``feature_specs()`` gives them (by default
    the specs whose columns ``required_features`` names, so ``("sma_5", "sma_20")`` means ``sma(5)``,
    ``sma(20)``); the features DAG stores them, backtests compute them, the trader checks them at start.

    Optional metadata: ``params`` declares parameters with defaults (``{"fast": Param(10)}``), so config
    and backtests can list them; ``describe()`` gives name, warm-up, features and the actual parameters.
    """

    name: ClassVar[str]
    warmup: ClassVar[int] = 1  # rows of history one decision needs, the decided row included
    required_features: tuple[str, ...] = ()
    declared_params: ClassVar[dict[str, Param]] = {}

    def __init__(self, **params) -> None:
        self.params = params

    def signals(self, frame: pd.DataFrame) -> np.ndarray:  # pragma: no cover - interface
        """+1/-1/0 per row, causal. Must not mutate ``frame``."""
        raise NotImplementedError

    def feature_specs(self) -> tuple[FeatureSpec, ...]:
        """The feature specs ``signals`` reads (``ValueError`` naming a column no indicator produces)."""
        return specs_for_columns(self.required_features)

    def describe(self) -> dict:
        return {"name": self.name, "warmup": self.warmup, "required_features": list(self.required_features),
                "feature_specs": [s.text for s in self.feature_specs()], "params": dict(self.params)}

    def reason(self, action: Action) -> str:
        """Why ``action`` was taken, for the records (override for something more specific)."""
        return "" if action is Action.HOLD else f"{self.name} {action.value.lower()} signal"

    def decide(self, window: pd.DataFrame) -> Signal:
        """The signal for the newest row of ``window``."""
        if len(window) == 0:
            return Signal(Action.HOLD, "no data")
        action = _ACTIONS[int(self.signals(window)[-1])]
        return Signal(action, self.reason(action))


def need_spec(strategy: str, indicator: str, *args) -> FeatureSpec:
    """The spec ``indicator(*args)`` a strategy needs for its parameters; ``ValueError`` naming the strategy, the
    spec and what is valid (e.g. ``sma_cross needs sma(20000): sma: period must be in 1..10000, got 20000``)."""
    try:
        return make_spec(indicator, *args)
    except ValueError as exc:
        raise ValueError(f"{strategy} needs {indicator}({', '.join(map(str, args))}): {exc}") from None


def decide_safely(strategy: Strategy, window: pd.DataFrame) -> Signal:
    """Call ``strategy.decide`` on a copy; turn any exception into a ``StrategyError``."""
    try:
        signal = strategy.decide(window.copy())
    except Exception as exc:  # noqa: BLE001 - the point is to contain anything a strategy raises
        raise StrategyError(f"{strategy.name} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(signal, Signal):
        raise StrategyError(f"{strategy.name} returned {signal!r}, not a Signal")
    return signal
