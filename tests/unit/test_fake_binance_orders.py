"""The fake Binance's signed endpoints, driven by python-binance's own Client (reference 3.4-3.10, 4, 5.2)."""

from decimal import Decimal

import pytest
import requests

from tests.fake_binance import Fault
from tests.fake_binance.clients import api_error
from tests.fake_binance.signing import sign, signed_payload
from tests.helpers import binance_client


@pytest.fixture
def fake(fake_binance):
    return fake_binance(price="60000.00", usdt="10000")


@pytest.fixture
def client(fake):
    return binance_client(fake, signed=True)


def test_official_hmac_test_vectors():
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
    body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"

    payload, _ = signed_payload(query + "&" + body + "&signature=x", "")
    mixed, sent = signed_payload(query, body + "&signature=abc")

    assert sign(secret, payload) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    assert sign(secret, mixed) == "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77" and sent == "abc"


def test_market_buy_fills_at_the_feed_price_with_full_response(fake, client):
    order = client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01000", newClientOrderId="kp-a-1-B")

    assert order["status"] == "FILLED" and order["clientOrderId"] == "kp-a-1-B"
    assert order["fills"] == [{"price": "60000.00000000", "qty": "0.01000000", "commission": "0.00001000",
                               "commissionAsset": "BTC", "tradeId": 1}]
    balances = {b["asset"]: b for b in client.get_account()["balances"]}
    assert Decimal(balances["USDT"]["free"]) == Decimal("9400") and Decimal(balances["BTC"]["free"]) == Decimal("0.00999")
    assert client.get_order(symbol="BTCUSDT", origClientOrderId="kp-a-1-B")["status"] == "FILLED"
    assert [t["orderId"] for t in client.get_my_trades(symbol="BTCUSDT")] == [order["orderId"]]


def test_limit_gtc_rests_then_fills_when_the_price_reaches_it_and_ioc_expires(fake, client):
    resting = client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="59000.00")
    ioc = client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="IOC", quantity="0.01", price="59000.00")
    open_before = client.get_open_orders(symbol="BTCUSDT")

    fake.set_price("BTCUSDT", "58999.00")

    assert resting["status"] == "NEW" and ioc["status"] == "EXPIRED"
    assert [o["orderId"] for o in open_before] == [resting["orderId"]]
    assert client.get_order(symbol="BTCUSDT", orderId=resting["orderId"])["status"] == "FILLED"
    assert client.get_open_orders(symbol="BTCUSDT") == []


def test_stop_loss_triggers_below_the_stop(fake, client):
    client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.1")
    stop = client.create_order(symbol="BTCUSDT", side="SELL", type="STOP_LOSS", quantity="0.05", stopPrice="55000.00")
    immediate = api_error(lambda: client.create_order(symbol="BTCUSDT", side="SELL", type="STOP_LOSS", quantity="0.01",
                                                      stopPrice="61000.00"))

    fake.set_price("BTCUSDT", "54000.00")

    assert "status" not in stop and "fills" not in stop  # ACK by default for STOP_LOSS
    assert (immediate.code, immediate.message) == (-2010, "Order would trigger immediately.")
    assert client.get_order(symbol="BTCUSDT", orderId=stop["orderId"])["status"] == "FILLED"


def test_cancel_and_unknown_orders(fake, client):
    order = client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="50000.00")

    canceled = client.cancel_order(symbol="BTCUSDT", orderId=order["orderId"])
    again = api_error(lambda: client.cancel_order(symbol="BTCUSDT", orderId=order["orderId"]))
    missing = api_error(lambda: client.get_order(symbol="BTCUSDT", origClientOrderId="nope"))

    assert canceled["status"] == "CANCELED"
    assert (again.code, again.message) == (-2011, "Unknown order sent.")
    assert (missing.status_code, missing.code, missing.message) == (400, -2013, "Order does not exist.")
    assert Decimal(next(b for b in client.get_account()["balances"] if b["asset"] == "USDT")["free"]) == Decimal("10000")


def test_duplicate_client_order_id_is_rejected_only_while_open(fake, client):
    limit = dict(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="50000.00")
    client.create_order(newClientOrderId="dup-1", **limit)

    dup = api_error(lambda: client.create_order(newClientOrderId="dup-1", **limit))
    client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="dup-2")
    second = client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="dup-2")

    assert (dup.code, dup.message) == (-2010, "Duplicate order sent.")
    assert second["status"] == "FILLED"  # as on Binance: a filled id may be reused, so the client must query first


@pytest.mark.parametrize(("params", "code", "msg"), [
    ({"quantity": "0.000001"}, -1013, "Filter failure: LOT_SIZE"),
    ({"quantity": "0.000015"}, -1013, "Filter failure: LOT_SIZE"),
    ({"quantity": "0.00008"}, -1013, "Filter failure: NOTIONAL"),
    ({"quantity": "0.01", "type": "LIMIT", "timeInForce": "GTC", "price": "60000.001"}, -1013, "Filter failure: PRICE_FILTER"),
    ({"quantity": "1"}, -2010, "Account has insufficient balance for requested action."),
    ({"quantity": "0.01", "symbol": "XXXUSDT"}, -1121, "Invalid symbol."),
    ({"quantity": "0.01", "type": "LIMIT", "timeInForce": "GTC"}, -1102,
     "Mandatory parameter 'price' was not sent, was empty/null, or malformed."),
    ({}, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"),
])
def test_order_rejections_use_the_reference_codes(client, params, code, msg):
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", **params}

    err = api_error(lambda: client.create_order(**order))

    assert (err.code, err.message) == (code, msg)


def test_test_order_validates_without_placing(fake, client):
    assert client.create_test_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01") == {}
    assert fake.orders() == []


def test_wrong_key_secret_or_clock_are_refused(fake):
    wrong_secret = binance_client(fake, signed=True, secret="x" * 64)
    wrong_key = binance_client(fake, signed=True, key="nobody")
    late = binance_client(fake, signed=True)
    fake.set_skew(-5000)  # the server is 5 s behind: every client timestamp is "ahead"

    errors = [api_error(c.get_account) for c in (wrong_secret, wrong_key, late)]
    late.timestamp_offset = late.get_server_time()["serverTime"] - int(__import__("time").time() * 1000)
    account = late.get_account()

    assert [(e.status_code, e.code, e.message) for e in errors] == [
        (400, -1022, "Signature for this request is not valid."),
        (401, -2015, "Invalid API-key, IP, or permissions for action."),
        (400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."),
    ]
    assert account["accountType"] == "SPOT"


def test_an_order_placed_but_answered_with_503_exists_when_queried(fake, client):
    fake.inject(Fault("POST", "/api/v3/order", 503, -1007, after_execute=True))

    lost = api_error(lambda: client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
                                                 newClientOrderId="kp-lost"))

    assert (lost.status_code, lost.code) == (503, -1007)
    assert client.get_order(symbol="BTCUSDT", origClientOrderId="kp-lost")["status"] == "FILLED"


def test_unsigned_request_to_a_signed_endpoint_is_refused(fake):
    resp = requests.get(f"{fake.url}/api/v3/account", timeout=5)

    assert resp.status_code == 401 and resp.json()["code"] == -2015
