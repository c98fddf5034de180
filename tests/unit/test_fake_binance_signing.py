"""The 2026 signing rules of the fake Binance (binance-protective-orders.md 5; spot reference 4.2, 4.4):
percent-encode before signing, a non-ASCII symbol through python-binance, and the recvWindow rules."""

import time
from urllib.parse import quote

import pytest
import requests
from binance.exceptions import BinanceAPIException

from tests.fake_binance import default_filters
from tests.fake_binance.signing import sign, ws_payload
from tests.helpers import binance_client

SYMBOL = "币安人生USDT"  # a live Binance symbol with a non-ASCII base asset


@pytest.fixture
def fake(fake_binance):
    fake = fake_binance(usdt="1000")
    fake.add_symbol(SYMBOL, "币安人生", "USDT", default_filters(tick="0.00010000", step="1.00000000", min_notional="5.00000000"))
    fake.set_price(SYMBOL, "0.2500")
    return fake


def signed_post(fake, pairs: list[tuple[str, str]], encode_before_signing: bool, raw_utf8_body: bool = False) -> requests.Response:
    """POST /api/v3/order signed over the percent-encoded payload or over the raw UTF-8 text; the body on the wire is
    percent-encoded (``raw_utf8_body=False``) or raw UTF-8."""
    encoded = "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs)
    text = "&".join(f"{k}={v}" for k, v in pairs)
    signature = sign(fake.api_secret, encoded if encode_before_signing else text)
    body = text if raw_utf8_body else encoded
    return requests.post(f"{fake.url}/api/v3/order", data=f"{body}&signature={signature}".encode(), timeout=5,
                         headers={"X-MBX-APIKEY": fake.api_key, "Content-Type": "application/x-www-form-urlencoded"})


def order_pairs(cid: str) -> list[tuple[str, str]]:
    return [("symbol", SYMBOL), ("side", "BUY"), ("type", "MARKET"), ("quantity", "40"), ("newClientOrderId", cid),
            ("timestamp", str(int(time.time() * 1000)))]


def test_python_binance_trades_a_non_ascii_symbol_against_the_percent_encoded_signature_check(fake):
    client = binance_client(fake, signed=True)

    order = client.create_order(symbol=SYMBOL, side="BUY", type="MARKET", quantity="40", newClientOrderId="kp-utf8-1")
    queried = client.get_order(symbol=SYMBOL, origClientOrderId="kp-utf8-1")
    trades = client.get_my_trades(symbol=SYMBOL)

    assert order["status"] == "FILLED" and order["symbol"] == SYMBOL
    assert queried["executedQty"] == "40.00000000" and [t["orderId"] for t in trades] == [order["orderId"]]


def test_a_signature_over_the_unencoded_text_is_refused_and_over_the_encoded_payload_accepted(fake):
    unencoded = signed_post(fake, order_pairs("kp-utf8-2"), encode_before_signing=False)
    encoded = signed_post(fake, order_pairs("kp-utf8-3"), encode_before_signing=True)

    assert (unencoded.status_code, unencoded.json()) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
    assert encoded.status_code == 200 and encoded.json()["symbol"] == SYMBOL
    assert [o["clientOrderId"] for o in fake.orders(SYMBOL)] == ["kp-utf8-3"]


def test_a_raw_utf8_body_is_checked_against_its_percent_encoded_form(fake):
    right = signed_post(fake, order_pairs("kp-utf8-4"), encode_before_signing=True, raw_utf8_body=True)
    wrong = signed_post(fake, order_pairs("kp-utf8-5"), encode_before_signing=False, raw_utf8_body=True)

    assert right.status_code == 200 and right.json()["clientOrderId"] == "kp-utf8-4"
    assert wrong.json() == {"code": -1022, "msg": "Signature for this request is not valid."}


def test_ascii_requests_sign_the_same_either_way(fake):
    pairs = [("symbol", "BTCUSDT"), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.001"),
             ("timestamp", str(int(time.time() * 1000)))]
    fake.set_price("BTCUSDT", "60000.00")

    assert signed_post(fake, pairs, encode_before_signing=False).status_code == 200


@pytest.mark.parametrize(("age_ms", "recv_window", "code", "msg"), [
    (6_000, None, -1021, "Timestamp for this request is outside of the recvWindow."),   # default window 5000
    (-1_500, None, -1021, "Timestamp for this request was 1000ms ahead of the server's time."),
    (0, "60001", -1102, "'recvWindow' contains unexpected value. Cannot be greater than 60000."),
    (0, "5000.1234", -1111, "Parameter 'recvWindow' has too much precision."),
])
def test_recv_window_rules(fake, age_ms, recv_window, code, msg):
    client = binance_client(fake, signed=True)
    client.REQUEST_RECVWINDOW = None  # python-binance sends 10000 unless told otherwise
    client.timestamp_offset = -age_ms
    params = {"recvWindow": recv_window} if recv_window else {}

    with pytest.raises(BinanceAPIException) as err:
        client.get_account(**params)

    assert (err.value.code, err.value.message) == (code, msg)


def test_microsecond_timestamps_and_a_decimal_recv_window_are_accepted(fake):
    now_us = int(time.time() * 1_000_000) - 5_500_000
    query = f"recvWindow=6000.500&timestamp={now_us}"
    resp = requests.get(f"{fake.url}/api/v3/account?{query}&signature={sign(fake.api_secret, query)}", timeout=5,
                        headers={"X-MBX-APIKEY": fake.api_key})

    assert resp.status_code == 200 and resp.json()["accountType"] == "SPOT"


def test_the_ws_api_signs_sorted_unencoded_params():
    assert ws_payload({"timestamp": 2, "apiKey": "k", "signature": "x", "recvWindow": 1}) == "apiKey=k&recvWindow=1&timestamp=2"
