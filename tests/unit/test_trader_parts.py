import re
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from trader.brokers.paper import Candle, PaperBroker
from trader.config import SettingsError, load_settings
from trader.orders import OrderIntent, client_order_id, round_down
from trader.sleeve import SleeveSpec
from trader.strategies import build_strategy
from trader.strategies.base import Action, Signal, Strategy, StrategyError, decide_safely
from trader.symbols import split_symbol


def _window(fast, slow):
    return pd.DataFrame({"sma_10": fast, "sma_30": slow})


def test_sma_cross_signals_are_causal_and_match_decide_per_row():
    t = np.arange(300, dtype=float)
    frame = pd.DataFrame({"sma_10": np.sin(t / 7) + 0.01, "sma_30": np.sin(t / 19) * 0.5})
    frame.loc[:40, "sma_30"] = np.nan  # warming up
    strategy = build_strategy("sma_cross")

    full = strategy.signals(frame)
    per_row = [strategy.signals(frame.iloc[: i + 1])[-1] for i in range(len(frame))]
    decided = [strategy.decide(frame.iloc[max(0, i - 1): i + 1]).action for i in range(len(frame))]

    assert list(full) == per_row
    assert [{1: Action.BUY, -1: Action.SELL, 0: Action.HOLD}[v] for v in full] == decided
    assert (full == 1).sum() > 3 and (full == -1).sum() > 3


@pytest.mark.parametrize(
    ("fast", "slow", "action"),
    [([1.0, 3.0], [2.0, 2.0], Action.BUY), ([3.0, 1.0], [2.0, 2.0], Action.SELL), ([2.0, 3.0], [2.0, 2.0], Action.HOLD),
     ([1.0, 2.0], [2.0, 2.0], Action.HOLD), ([np.nan, 3.0], [2.0, 2.0], Action.HOLD), ([3.0], [2.0], Action.HOLD)],
)
def test_sma_cross_is_a_strict_crossover(fast, slow, action):
    assert build_strategy("sma_cross").decide(_window(fast, slow)).action is action


def test_strategy_parameters_are_validated():
    with pytest.raises(ValueError, match="fast < slow"):
        build_strategy("sma_cross", fast=30, slow=10)
    with pytest.raises(ValueError, match="unknown strategy"):
        build_strategy("nope")


def test_a_raising_strategy_becomes_a_strategy_error():
    class Broken(Strategy):
        name = "broken"

        def signals(self, frame):
            raise ZeroDivisionError("boom")

    with pytest.raises(StrategyError, match="broken raised ZeroDivisionError: boom"):
        decide_safely(Broken(), _window([1.0], [1.0]))


def test_strategy_gets_a_copy():
    class Mutating(Strategy):
        name = "mutating"

        def signals(self, frame):
            frame.loc[:, "sma_10"] = 0.0
            return np.zeros(len(frame), dtype=np.int8)

    w = _window([1.0, 2.0], [3.0, 4.0])
    decide_safely(Mutating(), w)
    assert w["sma_10"].tolist() == [1.0, 2.0]


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


@pytest.mark.parametrize(("qty", "step", "want"), [("0.016259", "0.00001", "0.01625"), ("1", "0.1", "1.0"), ("0.000009", "0.00001", "0")])
def test_round_down_to_step(qty, step, want):
    assert round_down(Decimal(qty), Decimal(step)) == Decimal(want)


def test_paper_fill_is_at_the_next_open_with_fee_and_slippage():
    asked = []

    def candles_after(symbol, interval, after_ms, limit, sleeve):
        asked.append((symbol, interval, after_ms, limit, sleeve))
        return [Candle(after_ms + 60_000, Decimal("61526.21"), Decimal("61600"), Decimal("61500"))]

    broker = PaperBroker(candles_after, fee_bps=Decimal("10"), slippage_bps=Decimal("5"))
    intent = OrderIntent(sleeve="s", symbol="BTCUSDT", side="BUY", quantity=Decimal("0.01625"), signal_open_time_ms=1_000,
                         interval="1m", mode="paper")

    report = broker.submit(intent)

    (fill,) = report.fills
    assert report.status == "FILLED" and asked == [("BTCUSDT", "1m", 1_000, 1, "s")]
    assert fill.price == Decimal("61526.21") * Decimal("1.0005") and fill.filled_at_ms == 61_000
    assert fill.fee == Decimal("0.01625") * fill.price * Decimal("0.001")
    assert fill.fee_asset == "USDT"


def test_paper_order_waits_while_the_next_candle_is_unknown():
    broker = PaperBroker(lambda *a: [])

    report = broker.submit(OrderIntent(sleeve="s", symbol="BTCUSDT", side="SELL", quantity=Decimal("1"), signal_open_time_ms=1_000,
                                       interval="1m", mode="paper"))

    assert (report.status, report.fills) == ("NEW", ())


@pytest.mark.parametrize(("tif", "low", "status", "price"), [("GTC", "59000", "FILLED", "59500"), ("IOC", "59600", "EXPIRED", None),
                                                             ("GTC", "59600", "NEW", None)])
def test_paper_limit_orders(tif, low, status, price):
    broker = PaperBroker(lambda *a: [Candle(2, Decimal("60000"), Decimal("60100"), Decimal(low))])
    intent = OrderIntent(sleeve="s", symbol="BTCUSDT", side="BUY", quantity=Decimal("0.1"), signal_open_time_ms=1, type="LIMIT",
                         price=Decimal("59500"), time_in_force=tif, interval="1m", mode="paper")

    report = broker.submit(intent)

    assert report.status == status
    assert [f.price for f in report.fills] == ([Decimal(price)] if price else [])


def test_split_symbol():
    assert split_symbol("BTCUSDT") == ("BTC", "USDT") and split_symbol("ETHBTC") == ("ETH", "BTC")


@pytest.mark.parametrize(
    ("env", "named"),
    [({}, "DATABASE_URL"), ({"DATABASE_URL": "postgresql://x/y", "TRADER_ORDER_QUOTE": "-1"}, "TRADER_ORDER_QUOTE"),
     ({"DATABASE_URL": "postgresql://x/y", "TRADER_SLEEVES": "BTCUSDT-1m"}, "TRADER_SLEEVES"),
     ({"DATABASE_URL": "postgresql://x/y", "TRADER_METRICS_PORT": "70000"}, "TRADER_METRICS_PORT"),
     ({"DATABASE_URL": "postgresql://x/y", "TRADER_METRICS_HOST": "everywhere"}, "TRADER_METRICS_HOST"),
     ({"DATABASE_URL": "postgresql://x/y", "TRADER_MODE": "live"}, "TRADER_MODE=live needs BINANCE_API_KEY"),
     ({"DATABASE_URL": "postgresql://x/y", "TRADER_SLEEVES": "BTCUSDT:1m:sma_cross,ETHBTC:1m:sma_cross"}, "one quote asset"),
     ({"DATABASE_URL": "postgresql://x/y", "TRADER_SLEEVES": "BTCUSDT:1m:sma_cross:-5"}, "TRADER_SLEEVES")],
)
def test_invalid_trader_settings_name_the_setting(monkeypatch, env, named):
    for name in ("DATABASE_URL", "BINANCE_API_KEY", "BINANCE_API_SECRET", "TRADER_BINANCE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    with pytest.raises(SettingsError, match=named):
        load_settings()


PURE = ["trader.errors", "trader.filters", "trader.risk", "trader.risk.exposure", "trader.risk.killswitch",
        "trader.risk.order_rate", "trader.risk.staleness", "trader.strategies", "trader.orders", "trader.brokers.paper"]


@pytest.mark.parametrize("module", PURE)
def test_trader_core_modules_import_no_io_library(module):
    import subprocess
    import sys

    libs = ["psycopg2", "psycopg", "sqlalchemy", "requests", "binance", "aiohttp", "confluent_kafka"]
    code = f"import sys, {module}; print(','.join(m for m in {libs!r} if m in sys.modules))"

    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == ""


def test_key_file_is_read_and_secrets_never_show_in_repr(tmp_path, monkeypatch):
    key_file = tmp_path / "binance.keys"
    key_file.write_text("# testnet\nBINANCE_API_KEY=the-key\nBINANCE_API_SECRET=s3cr3t-value\n")
    key_file.chmod(0o600)
    for name in ("BINANCE_API_KEY", "BINANCE_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://x/y")
    monkeypatch.setenv("TRADER_MODE", "testnet")
    monkeypatch.setenv("TRADER_BINANCE_KEY_FILE", str(key_file))

    settings = load_settings()
    key, secret = settings.api_credentials()

    assert (key.get_secret_value(), secret.get_secret_value()) == ("the-key", "s3cr3t-value")
    assert "s3cr3t-value" not in repr(settings) + str(settings) + repr(secret)


@pytest.mark.parametrize("perm", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused_with_chmod_600(tmp_path, monkeypatch, perm):
    key_file = tmp_path / "binance.keys"
    key_file.write_text("BINANCE_API_KEY=the-key\nBINANCE_API_SECRET=s3cr3t-value\n")
    key_file.chmod(perm)
    for name in ("BINANCE_API_KEY", "BINANCE_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://x/y")
    monkeypatch.setenv("TRADER_MODE", "testnet")
    monkeypatch.setenv("TRADER_BINANCE_KEY_FILE", str(key_file))

    with pytest.raises(SettingsError) as err:
        load_settings()

    message = str(err.value)
    assert "TRADER_BINANCE_KEY_FILE" in message and f"chmod 600 {key_file}" in message
    assert "the-key" not in message and "s3cr3t-value" not in message


def test_client_order_ids_of_different_intents_on_one_candle_differ():
    ids = {client_order_id("BTCUSDT:1m:sma_cross", 1, intent, "paper") for intent in ("BUY", "SELL", "STOP_LOSS")}

    assert len(ids) == 3


@pytest.mark.parametrize(("open_", "low", "status", "price"), [("60000", "57500", "FILLED", "58000"), ("57000", "56000", "FILLED", "57000"),
                                                               ("60000", "58500", "NEW", None)])
def test_paper_stop_loss_sells_at_the_stop_or_the_gap_open(open_, low, status, price):
    broker = PaperBroker(lambda *a: [Candle(2, Decimal(open_), Decimal(open_), Decimal(low))])
    stop = OrderIntent(sleeve="s", symbol="BTCUSDT", side="SELL", quantity=Decimal("0.1"), signal_open_time_ms=1, type="STOP_LOSS",
                       stop_price=Decimal("58000"), intent="STOP_LOSS", interval="1m", mode="paper")

    report = broker.submit(stop)

    assert report.status == status and [f.price for f in report.fills] == ([Decimal(price)] if price else [])


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
