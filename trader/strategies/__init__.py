"""Strategy registry: name -> class. Strategies are chosen and parametrised in config."""

from __future__ import annotations

from trader.strategies.base import Strategy
from trader.strategies.sma_cross import SmaCross

REGISTRY: dict[str, type[Strategy]] = {cls.name: cls for cls in (SmaCross,)}


def build_strategy(name: str, **params) -> Strategy:
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
    return cls(**params)
