"""Look-ahead guard and warm-up analysis (trader.backtest.strategy_checks, the code of ``check-strategy``) for every
bundled strategy: changing future candles cannot change past decisions, a signal equals the one on the history
ending at its bar, and the declared warm-up window reproduces the backtest's signals (live = backtest).

The whole backtest path is re-run on the altered data (features from ``klinepipe.features``, the
strategy's ``signals``, the fills), so a look-ahead anywhere on that path shows up here.
"""

import pytest

from tests.helpers import SAMPLE
from trader.backtest.candles import read_kline_file
from trader.backtest.runner import feature_frame, strategy_signals
from trader.backtest.strategy_checks import check_strategy
from trader.strategies import BUNDLED, build_strategy

N = 2500


@pytest.fixture(scope="module")
def candles():
    return read_kline_file(SAMPLE / "BTCUSDT-1m.csv.gz").iloc[:N].reset_index(drop=True)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_the_bundled_strategies_read_no_future_and_declare_enough_warmup(candles, name):
    findings = check_strategy(candles, lambda: build_strategy(name))

    assert [f.line for f in findings if f.problem] == []
    assert {f.check for f in findings} >= {"look-ahead", "warm-up"}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_live_decide_on_its_warmup_window_equals_the_backtest_signal(candles, name):
    strategy = build_strategy(name)
    frame = feature_frame(candles)
    full = strategy_signals(strategy, frame)
    actions = {"BUY": 1, "SELL": -1, "HOLD": 0}

    for k in range(0, N, 13):
        window = frame.iloc[max(0, k - strategy.warmup + 1): k + 1]
        assert actions[strategy.decide(window).action.value] == full[k], f"{name}: bar {k} (warmup={strategy.warmup})"
