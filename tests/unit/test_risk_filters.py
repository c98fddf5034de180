"""Exchange filters applied before submit, on exchangeInfo-shaped filters, edge cases included."""

from decimal import Decimal as D

import pytest

from tests.fake_binance import default_filters
from trader.errors import FatalError, FilterRejected, InsufficientBalance
from trader.filters import SymbolRules, check_balance, prepare_order, round_to_step

BTC = SymbolRules.from_exchange_info({"symbol": "BTCUSDT", "filters": default_filters()})
DOC = SymbolRules.from_exchange_info({"symbol": "ETHBTC", "filters": [  # the reference's doc examples (3.2)
    {"filterType": "PRICE_FILTER", "minPrice": "0.00000100", "maxPrice": "100000.00000000", "tickSize": "0.00000100"},
    {"filterType": "LOT_SIZE", "minQty": "0.00100000", "maxQty": "100000.00000000", "stepSize": "0.00100000"},
    {"filterType": "MIN_NOTIONAL", "minNotional": "0.00100000", "applyToMarket": True, "avgPriceMins": 5}]})


def test_rules_are_parsed_from_exchange_info():
    assert (BTC.tick, BTC.lot.step, BTC.lot.min_qty, BTC.min_notional) == (D("0.01"), D("0.00001"), D("0.00001"), D("5"))
    assert BTC.market_lot is not None and BTC.market_lot.step == 0  # live BTCUSDT: MARKET_LOT_SIZE step disabled
    assert DOC.min_notional == D("0.001") and DOC.min_notional_market


@pytest.mark.parametrize(("qty", "want"), [("0.016259", "0.01625"), ("0.0162599999", "0.01625"), ("0.01625", "0.01625"),
                                           ("1", "1.00000")])
def test_quantity_is_rounded_down_to_the_step(qty, want):
    assert prepare_order(BTC, "BUY", "MARKET", D(qty), D("60000")).quantity == D(want)


@pytest.mark.parametrize(("rules", "qty", "price", "name"), [
    (BTC, "0.0000099", "60000", "LOT_SIZE"),         # just below minQty: rounds to 0
    (DOC, "0.000999", "0.05", "LOT_SIZE"),           # just below minQty on a 0.001 step
    (BTC, "0.00008", "60000", "NOTIONAL"),           # 4.8 USDT: notional just below 5
    (BTC, "0.00009", "55555.55", "NOTIONAL"),        # 4.9999995: a hair below 5
    (BTC, "9000.00001", "1", "LOT_SIZE"),            # above maxQty after rounding
    (DOC, "0.019", "0.05", "MIN_NOTIONAL"),  # 0.00095 BTC < 0.001 (legacy MIN_NOTIONAL)
])
def test_orders_just_below_a_minimum_are_refused_with_the_filter_name(rules, qty, price, name):
    with pytest.raises(FilterRejected, match=f"Filter failure: {name}") as err:
        prepare_order(rules, "BUY", "MARKET", D(qty), D(price))

    assert isinstance(err.value, FatalError) and err.value.code == -1013


def test_notional_exactly_at_the_minimum_passes():
    assert prepare_order(BTC, "BUY", "MARKET", D("0.0001"), D("50000")).quantity == D("0.00010")


def test_limit_prices_round_to_the_tick_in_the_safe_direction():
    buy = prepare_order(BTC, "BUY", "LIMIT", D("0.01"), D("60000"), price=D("60000.019"))
    sell = prepare_order(BTC, "SELL", "LIMIT", D("0.01"), D("60000"), price=D("60000.011"))
    stop = prepare_order(BTC, "SELL", "STOP_LOSS", D("0.01"), D("60000"), stop_price=D("57000.019"))

    assert (buy.price, sell.price, stop.stop_price) == (D("60000.01"), D("60000.02"), D("57000.01"))


def test_price_outside_the_price_filter_is_refused():
    with pytest.raises(FilterRejected, match="PRICE_FILTER"):
        prepare_order(DOC, "BUY", "LIMIT", D("1"), D("0.05"), price=D("0.0000001"))


def test_market_notional_is_not_checked_when_the_filter_says_so():
    rules = SymbolRules.from_exchange_info({"symbol": "X", "filters": [
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "10", "stepSize": "0.001"},
        {"filterType": "NOTIONAL", "minNotional": "10", "applyMinToMarket": False, "maxNotional": "100", "applyMaxToMarket": False}]})

    assert prepare_order(rules, "BUY", "MARKET", D("0.001"), D("1")).quantity == D("0.001")
    with pytest.raises(FilterRejected, match="NOTIONAL"):
        prepare_order(rules, "BUY", "LIMIT", D("0.001"), D("1"), price=D("1"))


@pytest.mark.parametrize(("side", "qty", "quote", "base"), [("BUY", "0.1", "6005.99", "0"), ("SELL", "0.1", "0", "0.09999")])
def test_insufficient_balance_is_refused_locally(side, qty, quote, base):
    with pytest.raises(InsufficientBalance):
        check_balance(side, D(qty), D("60000"), D(quote), D(base), fee_bps=D("10"))


def test_enough_balance_passes_including_the_fee():
    check_balance("BUY", D("0.1"), D("60000"), D("6006"), D("0"), fee_bps=D("10"))


def test_round_to_step_keeps_the_step_exponent():
    assert str(round_to_step(D("0.123456789"), D("0.00100000"))) == "0.12300000"
