"""The sma_cross strategy: causal signals that match its per-row decision, a strict crossover, validated parameters."""

import numpy as np
import pandas as pd
import pytest

from trader.strategies import build_strategy
from trader.strategies.base import Action


def _window(fast, slow):
    return pd.DataFrame({"sma_10": fast, "sma_30": slow})


def test_sma_cross_signals_are_causal_and_match_decide_per_row():
    t = np.arange(300, dtype=float)
    frame = pd.DataFrame({"sma_10": np.sin(t / 7) + 0.01, "sma_30": np.sin(t / 19) * 0.5})
    frame.loc[:40, "sma_30"] = np.nan  # warming up
    strategy = build_strategy("sma_cross")

    full = strategy.signals(frame)
    per_row = [strategy.signals(frame.iloc[: i + 1])[-1] for i in range(len(frame))]
    decided = [strategy.decide(frame.iloc[max(0, i - 1): i + 1]).action for i in range(len(frame))]

    assert list(full) == per_row
    assert [{1: Action.BUY, -1: Action.SELL, 0: Action.HOLD}[v] for v in full] == decided
    assert (full == 1).sum() > 3 and (full == -1).sum() > 3


@pytest.mark.parametrize(
    ("fast", "slow", "action"),
    [([1.0, 3.0], [2.0, 2.0], Action.BUY), ([3.0, 1.0], [2.0, 2.0], Action.SELL), ([2.0, 3.0], [2.0, 2.0], Action.HOLD),
     ([1.0, 2.0], [2.0, 2.0], Action.HOLD), ([np.nan, 3.0], [2.0, 2.0], Action.HOLD), ([3.0], [2.0], Action.HOLD)],
)
def test_sma_cross_is_a_strict_crossover(fast, slow, action):
    assert build_strategy("sma_cross").decide(_window(fast, slow)).action is action


def test_strategy_parameters_are_validated():
    with pytest.raises(ValueError, match="fast < slow"):
        build_strategy("sma_cross", fast=30, slow=10)
    with pytest.raises(ValueError, match="unknown strategy"):
        build_strategy("nope")
