"""A sleeve on the command line or in TRADER_SLEEVES, ``SYMBOL:interval:strategy[:allocation]``, parsed in one place."""

from decimal import Decimal

import pytest

from trader.sleeve import SleeveSpec


@pytest.mark.parametrize(("text", "spec"), [
    ("btcusdt:1m:sma_cross", SleeveSpec(symbol="BTCUSDT", interval="1m", strategy="sma_cross")),
    ("ETHUSDT:5m:rsi_reversion:250.5", SleeveSpec(symbol="ETHUSDT", interval="5m", strategy="rsi_reversion",
                                                  allocation=Decimal("250.5"))),
])
def test_a_sleeve_spec_is_parsed_in_one_place(text, spec):
    assert SleeveSpec.parse(text) == spec and spec.name == f"{spec.symbol}:{spec.interval}:{spec.strategy}"


@pytest.mark.parametrize("text", ["BTCUSDT:1m", "BTCUSDT:1m:sma_cross:0", "BTCUSDT:1m:sma_cross:x", "a:b:c:1:2", "::sma_cross"])
def test_a_malformed_sleeve_spec_says_what_it_should_look_like(text):
    with pytest.raises(ValueError, match="must look like SYMBOL:interval:strategy"):
        SleeveSpec.parse(text)
