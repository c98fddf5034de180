"""The strategy interface: a features window in, a ``Signal`` out (pure; no I/O, no clock).

A strategy sees only the feature rows of one series up to and including the bar being decided,
oldest first; it never sees the venue. Live trading and backtests call the very same class.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

INTERFACE_VERSION = 1


class Action(str, enum.Enum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


@dataclass(frozen=True)
class Signal:
    action: Action
    reason: str = ""


class StrategyError(RuntimeError):
    """A strategy raised; the sleeve that runs it halts, the others go on."""


class Strategy:
    """Base class. Subclasses set ``name``, ``warmup`` and ``required_features`` and implement ``decide``."""

    name: ClassVar[str]
    warmup: ClassVar[int] = 1  # rows of history ``decide`` needs, the decided bar included
    required_features: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params) -> None:
        self.params = params

    def decide(self, window: pd.DataFrame) -> Signal:  # pragma: no cover - interface
        raise NotImplementedError


def decide_safely(strategy: Strategy, window: pd.DataFrame) -> Signal:
    """Call ``strategy.decide`` on a copy; turn any exception into a ``StrategyError``."""
    try:
        signal = strategy.decide(window.copy())
    except Exception as exc:  # noqa: BLE001 - the point is to contain anything a strategy raises
        raise StrategyError(f"{strategy.name} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(signal, Signal):
        raise StrategyError(f"{strategy.name} returned {signal!r}, not a Signal")
    return signal
