"""Strategies are called through a guard: an exception becomes a ``StrategyError``, and they get a copy of the data."""

import numpy as np
import pandas as pd
import pytest

from trader.strategies.base import Strategy, StrategyError, decide_safely


def _window(fast, slow):
    return pd.DataFrame({"sma_10": fast, "sma_30": slow})


def test_a_raising_strategy_becomes_a_strategy_error():
    class Broken(Strategy):
        name = "broken"

        def signals(self, frame):
            raise ZeroDivisionError("boom")

    with pytest.raises(StrategyError, match="broken raised ZeroDivisionError: boom"):
        decide_safely(Broken(), _window([1.0], [1.0]))


def test_strategy_gets_a_copy():
    class Mutating(Strategy):
        name = "mutating"

        def signals(self, frame):
            frame.loc[:, "sma_10"] = 0.0
            return np.zeros(len(frame), dtype=np.int8)

    w = _window([1.0, 2.0], [3.0, 4.0])
    decide_safely(Mutating(), w)
    assert w["sma_10"].tolist() == [1.0, 2.0]
