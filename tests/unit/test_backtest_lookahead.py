"""Look-ahead guard, for every bundled strategy: changing future candles cannot change past decisions.

The whole backtest path is re-run on the altered data (features from ``klinepipe.features``, the
strategy's ``signals``, the fills), so a look-ahead anywhere on that path shows up here.
"""

import numpy as np
import pytest

from tests.helpers import SAMPLE
from trader.backtest.candles import read_kline_file
from trader.backtest.engine import FillModel
from trader.backtest.runner import feature_frame, run_backtest, strategy_signals
from trader.strategies import REGISTRY, build_strategy

N = 2500
CUTS = (200, 1100, 2400)


@pytest.fixture(scope="module")
def candles():
    return read_kline_file(SAMPLE / "BTCUSDT-1m.csv.gz").iloc[:N].reset_index(drop=True)


def _alter_future(candles, k: int, how: str):
    out = candles.copy()
    cols = ["open", "high", "low", "close", "volume"]
    if how == "reversed":
        out.loc[k:, cols] = candles.loc[k:, cols].to_numpy()[::-1]
    else:  # a 20% jump from bar k on
        out.loc[k:, cols[:4]] = candles.loc[k:, cols[:4]].to_numpy() * 1.2
    return out


@pytest.mark.parametrize("how", ["reversed", "jump"])
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_future_candles_cannot_change_past_signals_or_equity(candles, name, how):
    model = FillModel(fee_bps=10)
    base = run_backtest(candles, build_strategy(name), model)

    for k in CUTS:
        altered = run_backtest(_alter_future(candles, k, how), build_strategy(name), model)

        assert np.array_equal(altered.signals[:k], base.signals[:k]), f"{name}: a signal before bar {k} changed"
        assert np.array_equal(altered.fills.equity[:k], base.fills.equity[:k]), f"{name}: equity before bar {k} changed"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_signal_is_what_the_strategy_says_on_the_history_up_to_that_bar(candles, name):
    strategy = build_strategy(name)
    frame = feature_frame(candles)
    full = strategy_signals(strategy, frame)

    for k in range(0, N, 37):
        assert strategy_signals(strategy, frame.iloc[: k + 1])[-1] == full[k], f"{name}: bar {k}"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_live_decide_on_its_warmup_window_equals_the_backtest_signal(candles, name):
    strategy = build_strategy(name)
    frame = feature_frame(candles)
    full = strategy_signals(strategy, frame)
    actions = {"BUY": 1, "SELL": -1, "HOLD": 0}

    for k in range(0, N, 13):
        window = frame.iloc[max(0, k - strategy.warmup + 1): k + 1]
        assert actions[strategy.decide(window).action.value] == full[k], f"{name}: bar {k} (warmup={strategy.warmup})"
