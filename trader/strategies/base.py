"""The strategy interface: feature rows in, signals out (pure; no I/O, no clock, no venue).

A strategy implements one vectorised, causal method, ``signals(frame)``: for every row of a series'
feature frame (oldest first) it returns +1 (BUY), -1 (SELL) or 0 (HOLD), where row ``i`` may depend
only on rows ``<= i``. The live trader calls ``decide(window)`` on the newest rows (the last signal);
backtests call ``signals`` once over the whole history. Both are the very same code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pandas as pd

from klinepipe.feature_specs import FeatureSpec
from klinepipe.features import make_spec, specs_for_columns
from trader.errors import StrategyError

__all__ = ["BUY", "HOLD", "INTERFACE_VERSION", "SELL", "Action", "Constraint", "Param", "Signal", "Strategy", "StrategyError",
           "check_params", "check_values", "decide_safely", "need_spec"]

# The version of this interface. A user strategy states the one it was written for (``interface_version``);
# a strategy written for another one is refused when it is loaded. 2: ``signals(frame)`` over feature rows,
# ``warmup``, ``required_features``, ``declared_params`` of typed, bounded ``Param``.
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
    """A declared strategy parameter: default, description, and what is valid.

    ``kind`` is ``"int"``, ``"float"`` or ``"categorical"``; unset, it is ``"categorical"`` when ``choices``
    are given, else the type of ``default``. ``low``/``high`` bound numbers (inclusive); ``choices`` lists
    the valid values of a categorical one. Optimisers read ``kind``/``low``/``high``/``choices``.
    """

    default: int | float | str
    help: str = ""
    low: int | float | None = None
    high: int | float | None = None
    choices: tuple | None = None
    kind: str | None = None

    def __post_init__(self) -> None:
        kind = self.kind or ("categorical" if self.choices is not None else "int" if _is_int(self.default) else "float")
        object.__setattr__(self, "kind", kind)
        if kind not in ("int", "float", "categorical"):
            raise ValueError(f"Param kind must be int, float or categorical, got {kind!r}")
        if kind == "categorical" and not self.choices:
            raise ValueError("a categorical Param needs choices")
        if self.check(self.default) is not None:
            raise ValueError(f"Param default {self.default!r} is not valid: {self.check(self.default)}")

    def valid(self) -> str:
        """What is valid, e.g. ``int 2..500`` or ``one of 0, 1``."""
        if self.kind == "categorical":
            return "one of " + ", ".join(map(str, self.choices))
        if self.low is None and self.high is None:
            return self.kind
        return f"{self.kind} {'' if self.low is None else self.low}..{'' if self.high is None else self.high}"

    def check(self, value) -> str | None:
        """``None`` when ``value`` is valid, else why not."""
        if self.kind == "categorical":
            return None if value in self.choices else f"must be {self.valid()}, got {value!r}"
        if not (_is_int(value) if self.kind == "int" else _is_int(value) or isinstance(value, float)):
            return f"must be {'an integer' if self.kind == 'int' else 'a number'} ({self.valid()}), got {value!r}"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return f"must be {self.valid()}, got {value!r}"
        return None


@dataclass(frozen=True)
class Constraint:
    """A named rule between parameters, e.g. ``Constraint("fast < slow", lambda p: p["fast"] < p["slow"])``."""

    name: str
    holds: Callable[[dict], bool]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_params(cls: type[Strategy], params: dict) -> dict:
    """``params`` checked against ``cls.declared_params`` and ``cls.constraints`` (defaults filled in);
    ``ValueError`` naming the unknown or invalid parameter and listing what the strategy takes."""
    check_values(cls, params)
    full = {key: params.get(key, cls.declared_params[key].default) for key in cls.declared_params}
    check_constraints(cls, full)
    return full


def check_values(cls: type[Strategy], params: dict) -> None:
    """Each of ``params`` on its own: declared, of its type, in its range (constraints between them aside)."""
    declared = cls.declared_params
    takes = ", ".join(f"{k} ({p.valid()}, default {p.default})" for k, p in declared.items()) or "none"
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"strategy {cls.name!r} has no parameter {', '.join(unknown)}; it takes: {takes}")
    for key, value in params.items():
        why = declared[key].check(value)
        if why is not None:
            raise ValueError(f"strategy {cls.name!r}: parameter {key} {why}; it takes: {takes}")


def check_constraints(cls: type[Strategy], params: dict) -> None:
    """``ValueError`` naming the first of ``cls.constraints`` that ``params`` (defaults filling the gaps) break."""
    params = {**{k: p.default for k, p in cls.declared_params.items()}, **params}
    for rule in cls.constraints:
        if not rule.holds(params):
            shown = ", ".join(f"{k}={v}" for k, v in params.items())
            raise ValueError(f"strategy {cls.name!r} needs {rule.name}, got {shown}")


class Strategy:
    """Base class. Subclasses set ``name``, ``warmup`` and ``required_features`` and implement ``signals``.

    ``declared_params`` declares every parameter with its default and what is valid
    (``{"fast": Param(10, low=2, high=500)}``): ``build_strategy`` refuses an unknown or invalid one, and
    config, backtests and optimisers list them. Constraints between parameters (``fast < slow``) are
    declared in ``constraints``, named; ``describe()`` gives name, warm-up, features and the actual parameters.

    The feature specs a strategy needs follow from its parameters: ``feature_specs()`` gives them (by default
    the specs whose columns ``required_features`` names, so ``("sma_5", "sma_20")`` means ``sma(5)``,
    ``sma(20)``); the features DAG stores them, backtests compute them, the trader checks them at start.
    """

    name: ClassVar[str]
    interface_version: ClassVar[int] = INTERFACE_VERSION  # user strategies must state it themselves
    warmup: ClassVar[int] = 1  # rows of history one decision needs, the decided row included
    required_features: tuple[str, ...] = ()
    declared_params: ClassVar[dict[str, Param]] = {}
    constraints: ClassVar[tuple[Constraint, ...]] = ()

    def __init__(self, **params) -> None:
        check_constraints(type(self), params)
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
