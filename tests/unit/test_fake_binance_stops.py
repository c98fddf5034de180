"""Stop, take-profit and trailing orders on the fake Binance, through python-binance's own Client
(binance-protective-orders.md 1, 2, 5; symbol gates and filters 1.2; symbol status 5 CANCEL_ONLY)."""

from decimal import Decimal

import pytest

from tests.fake_binance.clients import api_error
from tests.helpers import binance_client


@pytest.fixture
def fake(fake_binance):
    fake = fake_binance(price="60000.00", usdt="100000")
    fake.deposit("BTC", "1")
    return fake


@pytest.fixture
def client(fake):
    return binance_client(fake, signed=True)


def status(client, order) -> dict:
    return client.get_order(symbol="BTCUSDT", orderId=order["orderId"])


@pytest.mark.parametrize(("type_", "side", "stop", "quiet", "trigger"), [
    ("STOP_LOSS", "SELL", "59000.00", ["59500.00", "60500.00", "59000.01"], "59000.00"),   # a print exactly at the stop
    ("STOP_LOSS", "BUY", "61000.00", ["60900.00", "59000.00"], "61500.00"),               # a gap through it
    ("TAKE_PROFIT", "SELL", "61000.00", ["60999.99", "58000.00"], "61000.00"),
    ("TAKE_PROFIT", "BUY", "59000.00", ["59000.01", "62000.00"], "58000.00"),
])
def test_each_stop_type_triggers_on_the_last_trade_at_or_through_its_stop(fake, client, type_, side, stop, quiet, trigger):
    order = client.create_order(symbol="BTCUSDT", side=side, type=type_, quantity="0.01", stopPrice=stop)

    fake.trade("BTCUSDT", *quiet)
    before = status(client, order)
    fake.set_price("BTCUSDT", trigger)
    after = status(client, order)

    assert set(order) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}  # ACK by default for stops
    assert (before["status"], before["workingTime"], before["isWorking"]) == ("NEW", -1, False)
    assert after["status"] == "FILLED" and after["workingTime"] > 0
    assert client.get_my_trades(symbol="BTCUSDT", orderId=order["orderId"])[0]["price"] == f"{Decimal(trigger):.8f}"


def test_a_stop_limit_that_gaps_past_its_limit_rests_on_the_book_until_the_price_comes_back(fake, client):
    order = client.create_order(symbol="BTCUSDT", side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity="0.01",
                                stopPrice="59000.00", price="58900.00", newOrderRespType="RESULT")

    fake.set_price("BTCUSDT", "58500.00")  # triggers, but below the limit: a SELL LIMIT at 58900 rests
    resting = status(client, order)
    fake.set_price("BTCUSDT", "58950.00")

    assert (order["status"], order["workingTime"], order["stopPrice"]) == ("NEW", -1, "59000.00000000")
    assert resting["status"] == "NEW" and resting["isWorking"] and resting["workingTime"] > 0
    assert status(client, order)["status"] == "FILLED"


def test_a_trailing_stop_without_stop_price_tracks_the_peak_from_placement_and_triggers_at_the_delta(fake, client):
    order = client.create_order(symbol="BTCUSDT", side="SELL", type="STOP_LOSS", quantity="0.01", trailingDelta=500)

    fake.trade("BTCUSDT", "62000.00", "63000.00", "60000.00")  # peak 63000; the level is 63000 * 0.95 = 59850
    tracking = status(client, order)
    fake.set_price("BTCUSDT", "59850.00")  # "equal to, or surpasses" triggers

    assert tracking["status"] == "NEW" and tracking["trailingDelta"] == 500 and tracking["trailingTime"] > 0
    assert status(client, order)["status"] == "FILLED"


def test_a_trailing_take_profit_with_stop_price_starts_tracking_only_once_the_stop_is_reached(fake, client):
    order = client.create_order(symbol="BTCUSDT", side="SELL", type="TAKE_PROFIT", quantity="0.01", stopPrice="61000.00",
                                trailingDelta=100)

    fake.trade("BTCUSDT", "60500.00", "59000.00")  # a 1 % drop before activation does nothing
    waiting = status(client, order)
    fake.trade("BTCUSDT", "61000.00", "62000.00", "61400.00")  # active at 61000, peak 62000, level 61380
    still = status(client, order)
    fake.set_price("BTCUSDT", "61380.00")

    assert (waiting["status"], waiting["trailingTime"]) == ("NEW", -1)
    assert still["status"] == "NEW" and still["trailingTime"] > 0
    assert status(client, order)["status"] == "FILLED"


def test_a_buy_trailing_stop_tracks_the_trough(fake, client):
    order = client.create_order(symbol="BTCUSDT", side="BUY", type="STOP_LOSS", quantity="0.01", trailingDelta=200)

    fake.trade("BTCUSDT", "58000.00", "59000.00")  # trough 58000; level 58000 * 1.02 = 59160
    waiting = status(client, order)
    fake.set_price("BTCUSDT", "59160.00")

    assert waiting["status"] == "NEW" and status(client, order)["status"] == "FILLED"


def test_expired_orders_carry_their_expiry_reason_in_the_reply_and_the_query(fake, client):
    ioc = client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="IOC", quantity="0.01", price="59000.00")
    fok = client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="FOK", quantity="0.01", price="59000.00")
    filled = client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")

    assert (ioc["status"], ioc["expiryReason"]) == ("EXPIRED", "UNFILLED_IOC_QUANTITY_EXPIRED")
    assert status(client, fok)["expiryReason"] == "UNFILLED_FOK_ORDER_EXPIRED"
    assert "expiryReason" not in filled


def test_self_trade_prevention_mode_defaults_to_the_symbols_and_is_echoed(fake, client):
    default = client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    chosen = client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", selfTradePreventionMode="EXPIRE_BOTH")
    fake.set_symbol("BTCUSDT", allowedSelfTradePreventionModes=["NONE", "EXPIRE_MAKER"])
    refused = api_error(lambda: client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
                                                    selfTradePreventionMode="DECREMENT"))

    assert (default["selfTradePreventionMode"], chosen["selfTradePreventionMode"]) == ("EXPIRE_MAKER", "EXPIRE_BOTH")
    assert (refused.code, refused.message) == (-1013, "This symbol does not allow the specified self-trade prevention mode.")


def test_a_limit_maker_that_would_take_is_refused(client):
    err = api_error(lambda: client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.01", price="60000.00"))

    assert (err.code, err.message) == (-2010, "Order would immediately match and take.")


STOP = {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_LOSS", "quantity": "0.01", "stopPrice": "59000.00"}


@pytest.mark.parametrize(("symbol_fields", "params", "code", "msg"), [
    ({}, {"stopPrice": "59000.001"}, -1013, "Filter failure: PRICE_FILTER"),
    ({}, {"stopPrice": None, "trailingDelta": 5}, -1013, "Filter failure: TRAILING_DELTA"),
    ({}, {"stopPrice": None, "trailingDelta": 2001}, -1013, "Filter failure: TRAILING_DELTA"),
    ({}, {"stopPrice": "61000.00"}, -2010, "Order would trigger immediately."),
    ({}, {"stopPrice": None}, -1102, "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed."),
    ({}, {"type": "STOP_LOSS_LIMIT", "price": "58000.00"}, -1102,
     "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."),
    ({}, {"price": "58000.00"}, -1106, "Parameter 'price' sent when not required."),
    ({}, {"type": "MARKET", "stopPrice": None, "trailingDelta": 100}, -1106, "Parameter 'trailingDelta' sent when not required."),
    ({}, {"type": "MARKET", "stopPrice": None, "timeInForce": "GTC"}, -1114, "TimeInForce parameter sent when not required."),
    ({"orderTypes": ["LIMIT", "MARKET"]}, {}, -2010, "Stop loss orders are not supported for this symbol."),
    ({"orderTypes": ["LIMIT", "MARKET", "STOP_LOSS"]}, {"type": "TAKE_PROFIT_LIMIT", "stopPrice": "61000.00",
                                                       "price": "61000.00", "timeInForce": "GTC"},
     -2010, "Take profit limit orders are not supported for this symbol."),
    ({"allowTrailingStop": False}, {"stopPrice": None, "trailingDelta": 100}, -2010,
     "Trailing stop orders are not supported for this symbol."),
    ({"status": "HALT"}, {}, -2010, "Market is closed."),
    ({"status": "BREAK"}, {}, -2010, "Market is closed."),
    ({"status": "CANCEL_ONLY"}, {"type": "MARKET", "stopPrice": None}, -2010, "Market is closed."),
])
def test_stop_order_rejections_use_the_reference_codes(fake, client, symbol_fields, params, code, msg):
    fake.set_symbol("BTCUSDT", **symbol_fields)
    order = {k: v for k, v in {**STOP, **params}.items() if v is not None}

    err = api_error(lambda: client.create_order(**order))

    assert (err.code, err.message) == (code, msg)


def test_max_num_algo_orders_counts_open_stops(fake, client):
    for i in range(5):
        client.create_order(**{**STOP, "stopPrice": f"{58000 + i}.00"})

    err = api_error(lambda: client.create_order(**STOP))
    limit = client.create_order(symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.01", price="65000.00")

    assert (err.code, err.message) == (-1013, "Filter failure: MAX_NUM_ALGO_ORDERS") and limit["status"] == "NEW"


def test_cancel_only_still_cancels_and_exchange_info_shows_status_and_flags(fake, client):
    order = client.create_order(**STOP)
    fake.set_symbol("BTCUSDT", status="CANCEL_ONLY", ocoAllowed=False, otoAllowed=False, allowTrailingStop=False)

    canceled = client.cancel_order(symbol="BTCUSDT", orderId=order["orderId"])
    info = client.get_symbol_info("BTCUSDT")

    assert canceled["status"] == "CANCELED"
    assert (info["status"], info["ocoAllowed"], info["otoAllowed"], info["allowTrailingStop"]) == ("CANCEL_ONLY", False, False, False)
    assert {f["filterType"] for f in info["filters"]} >= {"PRICE_FILTER", "TRAILING_DELTA", "MAX_NUM_ALGO_ORDERS", "MAX_NUM_ORDER_LISTS"}
    assert "STOP_LOSS" in info["orderTypes"] and "EXPIRE_MAKER" in info["allowedSelfTradePreventionModes"]


def test_a_triggered_stop_that_cannot_be_funded_expires_as_rejected(fake, client):
    order = client.create_order(symbol="BTCUSDT", side="BUY", type="STOP_LOSS", quantity="1", stopPrice="61000.00")
    client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.65")  # spends what the stop needs

    fake.set_price("BTCUSDT", "70000.00")  # the gap needs 70000 USDT; the lock held 61000, 39000 remain free
    got = status(client, order)

    assert (got["status"], got["expiryReason"]) == ("EXPIRED", "REJECTED")
