"""The bundled strategies: causal, vectorised, the documented rules, parameters declared and validated."""

import numpy as np
import pandas as pd
import pytest

from trader.strategies import REGISTRY, build_strategy
from trader.strategies.base import Action, decide_safely


def synthetic_features(n: int = 400) -> pd.DataFrame:
    """A wavy close with every v2 feature column, NaN while warming up, as the features table holds them."""
    t = np.arange(n, dtype=float)
    close = 100 + 10 * np.sin(t / 9) + 3 * np.sin(t / 2.3)
    s = pd.Series(close)
    mid, sd = s.rolling(20).mean(), s.rolling(20).std(ddof=0)
    ema12, ema26 = s.ewm(span=12, adjust=False).mean(), s.ewm(span=26, adjust=False).mean()
    macd = ema12 - ema26
    delta = s.diff()
    gain, loss = delta.clip(lower=0).ewm(alpha=1 / 14).mean(), (-delta.clip(upper=0)).ewm(alpha=1 / 14).mean()
    frame = pd.DataFrame({
        "close": close, "sma_10": s.rolling(10).mean(), "sma_30": s.rolling(30).mean(), "sma_50": s.rolling(50).mean(),
        "ema_10": s.ewm(span=10).mean(), "ema_30": s.ewm(span=30).mean(), "ema_50": s.ewm(span=50).mean(),
        "rsi_14": 100 - 100 / (1 + gain / loss), "macd": macd, "macd_signal": macd.ewm(span=9, adjust=False).mean(),
        "bb_upper_20": mid + 2 * sd, "bb_middle_20": mid, "bb_lower_20": mid - 2 * sd,
    })
    frame.loc[:33, ["macd", "macd_signal", "rsi_14"]] = np.nan
    return frame


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_strategy_is_causal_and_decide_matches_signals(name):
    frame = synthetic_features()
    strategy = build_strategy(name)

    full = strategy.signals(frame)
    per_row = [strategy.decide(frame.iloc[max(0, i - strategy.warmup + 1): i + 1]).action for i in range(len(frame))]

    assert full.dtype == np.int8 and len(full) == len(frame)
    assert [{1: Action.BUY, -1: Action.SELL, 0: Action.HOLD}[v] for v in full] == per_row
    assert (full == 1).sum() >= 2 and (full == -1).sum() >= 2
    assert set(strategy.required_features) <= set(frame.columns)


def test_the_bundled_strategies_are_registered():
    assert set(REGISTRY) == {"sma_cross", "ema_cross", "rsi_reversion", "macd_trend", "bollinger_breakout"}


@pytest.mark.parametrize(("rsi", "action"), [([35.0, 29.0], Action.BUY), ([29.0, 25.0], Action.HOLD), ([65.0, 71.0], Action.SELL),
                                             ([72.0, 75.0], Action.HOLD), ([np.nan, 20.0], Action.HOLD)])
def test_rsi_reversion_enters_the_zones(rsi, action):
    assert build_strategy("rsi_reversion").decide(pd.DataFrame({"rsi_14": rsi})).action is action


@pytest.mark.parametrize(("macd", "sig", "above_zero", "action"), [
    ([-1.0, 1.0], [0.0, 0.0], 0, Action.BUY), ([1.0, -1.0], [0.0, 0.0], 0, Action.SELL),
    ([-3.0, -1.0], [-2.0, -2.0], 0, Action.BUY), ([-3.0, -1.0], [-2.0, -2.0], 1, Action.HOLD),
])
def test_macd_trend_crossings(macd, sig, above_zero, action):
    frame = pd.DataFrame({"close": [100.0, 100.0], "macd": macd, "macd_signal": sig})

    assert build_strategy("macd_trend", above_zero=above_zero).decide(frame).action is action


@pytest.mark.parametrize(("close", "action"), [([100.0, 111.0], Action.BUY), ([104.0, 99.0], Action.SELL), ([104.0, 106.0], Action.HOLD)])
def test_bollinger_breakout(close, action):
    frame = pd.DataFrame({"close": close, "bb_upper_20": [110.0, 110.0], "bb_middle_20": [100.0, 100.0]})

    assert build_strategy("bollinger_breakout").decide(frame).action is action


def test_ema_cross_reads_the_ema_columns():
    frame = pd.DataFrame({"close": [2.0, 2.0], "ema_10": [1.0, 3.0], "ema_30": [2.0, 2.0], "sma_10": [3.0, 1.0],
                          "sma_30": [2.0, 2.0]})

    assert build_strategy("ema_cross").decide(frame).action is Action.BUY
    assert build_strategy("ema_cross").required_features == ("close", "ema_10", "ema_30")  # its ties scale with the close


@pytest.mark.parametrize(("name", "params", "message"), [
    ("rsi_reversion", {"lower": 80, "upper": 70}, "lower < upper"), ("ema_cross", {"fast": 30, "slow": 10}, "fast < slow"),
    ("macd_trend", {"nope": 1}, "has no parameter nope"),
])
def test_bad_parameters_are_refused_at_build_time(name, params, message):
    with pytest.raises(ValueError, match=message):
        build_strategy(name, **params)


def test_declared_params_have_defaults_that_build():
    for name, cls in REGISTRY.items():
        strategy = build_strategy(name, **{k: p.default for k, p in cls.declared_params.items()})
        assert strategy.describe()["name"] == name


def test_a_missing_feature_column_is_a_strategy_error_not_a_crash():
    with pytest.raises(Exception) as err:
        decide_safely(build_strategy("macd_trend"), pd.DataFrame({"close": [1.0, 2.0]}))

    assert type(err.value).__name__ == "StrategyError" and "macd" in str(err.value)
