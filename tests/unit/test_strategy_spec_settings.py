"""At start, a sleeve whose strategy needs a spec that is invalid, or a column no indicator provides, is refused in
one line naming the sleeve and what is valid (a parameter out of the strategy's declared range is caught first, naming
the range; a spec its parameters cannot make, or a column no indicator makes, by the specs)."""

import pytest

from trader import strategies
from trader.config import SettingsError, load_settings
from trader.strategies.sma_cross import SmaCross

URL = "postgresql://x/y"


@pytest.mark.parametrize("sleeves, params, message", [
    ("BTCUSDT:1m:sma_cross", {"sma_cross": {"fast": 5, "slow": 20000}},
     "TRADER_STRATEGY_PARAMS: sleeve BTCUSDT:1m:sma_cross: strategy 'sma_cross': parameter slow must be int 3..1000, got 20000"),
    ("ETHUSDT:5m:bollinger_breakout", {"bollinger_breakout": {"stddev": 0.05}},
     "TRADER_STRATEGY_PARAMS: sleeve ETHUSDT:5m:bollinger_breakout: strategy 'bollinger_breakout': "
     "parameter stddev must be float 0.1..10.0, got 0.05"),
    ("BTCUSDT:1m:macd_trend", {"macd_trend": {"fast": 30, "slow": 10}},
     "TRADER_STRATEGY_PARAMS: sleeve BTCUSDT:1m:macd_trend: strategy 'macd_trend' needs fast < slow, got fast=30, slow=10"),
    ("BTCUSDT:1m:rsi_reversion", {"rsi_reversion": {"period": 1}},
     "TRADER_STRATEGY_PARAMS: sleeve BTCUSDT:1m:rsi_reversion: strategy 'rsi_reversion': parameter period must be int 2..500, got 1"),
])
def test_an_invalid_spec_fails_at_start_naming_the_sleeve_and_the_valid_range(sleeves, params, message):
    with pytest.raises(SettingsError) as err:
        load_settings(database_url=URL, sleeves=sleeves, strategy_params=params)

    assert str(err.value).startswith(message) and "\n" not in str(err.value)


class ReadsUnknown(SmaCross):
    name = "reads_unknown"
    required_features = ("sma_10", "vwap_20")

    def __init__(self, fast: int = 10, slow: int = 30):
        super().__init__(fast, slow)
        self.required_features = ReadsUnknown.required_features

    def feature_specs(self):
        return super(SmaCross, self).feature_specs()


def test_a_column_no_indicator_provides_fails_at_start_listing_the_indicators(monkeypatch):
    monkeypatch.setitem(strategies.REGISTRY, "reads_unknown", ReadsUnknown)

    with pytest.raises(SettingsError) as err:
        load_settings(database_url=URL, sleeves="BTCUSDT:1m:reads_unknown", strategy_params={})

    text = str(err.value)
    assert text.startswith("TRADER_SLEEVES: sleeve BTCUSDT:1m:reads_unknown: strategy reads_unknown reads unknown"
                           " feature 'vwap_20': not the column of any indicator; valid: ret(period: int 1..10000); ")
    assert "sma(period: int 1..10000)" in text and "bbands(period: int 2..10000, stddev: float 0.1..10 = 2)" in text


def test_any_valid_periods_are_accepted_and_their_specs_follow_from_the_parameters():
    settings = load_settings(database_url=URL, sleeves="BTCUSDT:1m:sma_cross",
                             strategy_params={"sma_cross": {"fast": 7, "slow": 99}})

    strategy = strategies.build_strategy("sma_cross", **settings.strategy_params["sma_cross"])
    assert [s.text for s in strategy.feature_specs()] == ["sma(7)", "sma(99)"]
    assert strategy.required_features == ("sma_7", "sma_99")
