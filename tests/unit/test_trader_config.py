"""The trader's settings: a bad one names itself; the key file is read, kept secret and refused when others can read it;
symbols split into base and quote."""

import pytest

from trader.config import SettingsError, load_settings
from trader.symbols import split_symbol


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
