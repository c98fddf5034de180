"""Client order ids: deterministic, valid for Binance, distinct per mode and per intent; quantities rounded down to
the lot step."""

import re
from decimal import Decimal

import pytest

from trader.orders import client_order_id, round_down


def test_client_order_id_is_deterministic_and_valid_for_binance():
    a = client_order_id("BTCUSDT:1m:sma_cross", 1709251200000, "BUY", "testnet")

    assert a == client_order_id("BTCUSDT:1m:sma_cross", 1709251200000, "BUY", "testnet")
    assert a != client_order_id("BTCUSDT:1m:sma_cross", 1709251200000, "SELL", "testnet")
    assert a != client_order_id("ETHUSDT:1m:sma_cross", 1709251200000, "BUY", "testnet")
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,36}", a)  # Binance's newClientOrderId pattern


def test_client_order_ids_differ_by_mode_and_a_mode_is_required():
    ids = {mode: client_order_id("BTCUSDT:1m:sma_cross", 1709251200000, "BUY", mode) for mode in ("paper", "testnet", "demo", "live")}

    assert len(set(ids.values())) == 4
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,36}", i) for i in ids.values())
    with pytest.raises(ValueError, match="mode"):
        client_order_id("BTCUSDT:1m:sma_cross", 1, "BUY", "")


def test_client_order_ids_of_different_intents_on_one_candle_differ():
    ids = {client_order_id("BTCUSDT:1m:sma_cross", 1, intent, "paper") for intent in ("BUY", "SELL", "STOP_LOSS")}

    assert len(ids) == 3


@pytest.mark.parametrize(("qty", "step", "want"), [("0.016259", "0.00001", "0.01625"), ("1", "0.1", "1.0"), ("0.000009", "0.00001", "0")])
def test_round_down_to_step(qty, step, want):
    assert round_down(Decimal(qty), Decimal(step)) == Decimal(want)
