"""Settings of issue 16, trader side: notification secrets (env or a private file, never shown), the kill switch's
actions, self-trade prevention, recvWindow 5000 and the demo mode; each bad value is one line naming its setting.
And the pure parts of notifications: the signature a receiver checks, the backoff, the rate limit, the text."""

import hashlib
import hmac
from datetime import datetime, timezone

import pytest

from trader.config import SettingsError, load_settings
from trader.notify.messages import Message, RateLimit, backoff_seconds, render_text, sign, webhook_body
from trader.wiring import DEMO_REST_URL, build_risk, rest_base

_ENV = ("TRADER_MODE", "BINANCE_API_KEY", "BINANCE_API_SECRET", "TRADER_BINANCE_KEY_FILE", "TRADER_NOTIFY_WEBHOOK_URL",
        "TRADER_NOTIFY_WEBHOOK_SECRET", "TRADER_NOTIFY_WEBHOOK_SECRET_FILE", "TRADER_TELEGRAM_BOT_TOKEN",
        "TRADER_TELEGRAM_BOT_TOKEN_FILE", "TRADER_TELEGRAM_CHAT_ID", "TRADER_BINANCE_REST_URL")


@pytest.fixture
def env(monkeypatch):
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://x/y")
    return monkeypatch


@pytest.mark.parametrize(("values", "named"), [
    ({"TRADER_KILL_REDUCING": "sell_everything"}, "TRADER_KILL_REDUCING"),
    ({"TRADER_KILL_HALTED": "panic"}, "TRADER_KILL_HALTED"),
    ({"TRADER_SELF_TRADE_PREVENTION": "EXPIRE_SOMETHING"}, "TRADER_SELF_TRADE_PREVENTION"),
    ({"TRADER_RECV_WINDOW": "90000"}, "TRADER_RECV_WINDOW"),
    ({"TRADER_MODE": "demo"}, "TRADER_MODE=demo needs BINANCE_API_KEY"),
    ({"TRADER_TELEGRAM_BOT_TOKEN": "1:abc"}, "TRADER_TELEGRAM_CHAT_ID"),
    ({"TRADER_TELEGRAM_CHAT_ID": "42"}, "TRADER_TELEGRAM_BOT_TOKEN"),
    ({"TRADER_TELEGRAM_API_URL": "api.telegram.org"}, "TRADER_TELEGRAM_API_URL"),
    ({"TRADER_NOTIFY_RATE_PER_MINUTE": "0"}, "TRADER_NOTIFY_RATE_PER_MINUTE"),
])
def test_a_bad_setting_is_one_line_naming_it(env, values, named):
    for k, v in values.items():
        env.setenv(k, v)
    with pytest.raises(SettingsError, match=named) as err:
        load_settings()
    assert "\n" not in str(err.value)


def test_a_webhook_url_that_is_not_one_is_refused_without_repeating_it(env):
    env.setenv("TRADER_NOTIFY_WEBHOOK_URL", "hooks.example/T0KEN-in-path")
    with pytest.raises(SettingsError, match="TRADER_NOTIFY_WEBHOOK_URL: must be an http") as err:
        load_settings()
    assert "T0KEN" not in str(err.value)


@pytest.mark.parametrize("perm", [0o640, 0o604])
def test_a_secret_file_others_can_read_is_refused(env, tmp_path, perm):
    path = tmp_path / "telegram.token"
    path.write_text("1:abc\n")
    path.chmod(perm)
    env.setenv("TRADER_TELEGRAM_BOT_TOKEN_FILE", str(path))
    env.setenv("TRADER_TELEGRAM_CHAT_ID", "42")
    with pytest.raises(SettingsError, match=f"TRADER_TELEGRAM_BOT_TOKEN_FILE: {path} is readable by others.*chmod 600"):
        load_settings()


def test_secrets_come_from_private_files_and_never_show(env, tmp_path):
    token, secret = tmp_path / "telegram.token", tmp_path / "webhook.secret"
    token.write_text("1:t0ken-value\n")
    secret.write_text("hmac-s3cret\n")
    token.chmod(0o600)
    secret.chmod(0o600)
    env.setenv("TRADER_TELEGRAM_BOT_TOKEN_FILE", str(token))
    env.setenv("TRADER_TELEGRAM_CHAT_ID", "42")
    env.setenv("TRADER_NOTIFY_WEBHOOK_URL", "https://hooks.example/T0KEN-in-path")
    env.setenv("TRADER_NOTIFY_WEBHOOK_SECRET_FILE", str(secret))

    settings = load_settings()

    assert settings.telegram_token().get_secret_value() == "1:t0ken-value"
    assert settings.webhook_secret().get_secret_value() == "hmac-s3cret"
    shown = repr(settings) + str(settings)
    assert "t0ken-value" not in shown and "hmac-s3cret" not in shown and "T0KEN" not in shown


def test_defaults_of_the_2026_rules_and_the_kill_switch(env):
    settings = load_settings()
    policy = build_risk(settings).kill_policy
    assert settings.recv_window == 5000 and settings.self_trade_prevention == ""
    assert (policy.on_reducing, policy.on_halted) == ("flatten", "cancel")
    assert policy.cancels("BUY") and policy.cancels("FLATTEN") and not policy.cancels("STOP_LOSS")


def test_demo_mode_orders_go_to_binance_demo_unless_a_base_is_named(env):
    env.setenv("TRADER_MODE", "demo")
    env.setenv("BINANCE_API_KEY", "k")
    env.setenv("BINANCE_API_SECRET", "s")
    assert rest_base(load_settings()) == DEMO_REST_URL == "https://demo-api.binance.com"
    env.setenv("TRADER_BINANCE_REST_URL", "http://127.0.0.1:8080")
    assert rest_base(load_settings()) == "http://127.0.0.1:8080"
    env.setenv("TRADER_MODE", "testnet")
    env.delenv("TRADER_BINANCE_REST_URL")
    assert rest_base(load_settings()) is None  # python-binance's testnet base


MSG = Message(id=7, mode="live", kind="fill", created_at=datetime(2026, 5, 1, tzinfo=timezone.utc),
              payload={"side": "SELL", "quantity": "0.01", "symbol": "BTCUSDT", "price": "65000.5", "fee": "0.65",
                       "fee_asset": "USDT", "sleeve": "BTCUSDT:1m:sma_cross"})


def test_the_signature_is_hmac_sha256_of_the_exact_body():
    body = webhook_body(MSG)
    assert body == webhook_body(MSG)  # the same bytes on every attempt
    assert sign(body, "k") == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign(body, "k") != sign(body + b" ", "k")


def test_text_backoff_and_rate_limit():
    assert render_text(MSG) == ("[LIVE] Fill: SELL 0.01 BTCUSDT @ 65000.5 (fee 0.65 USDT), BTCUSDT:1m:sma_cross\n"
                                "#klinepipe-live-7")
    assert [backoff_seconds(n, 60, 5) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]
    now = [0.0]
    limit = RateLimit(3, lambda: now[0])
    taken = 0
    while limit.available():
        limit.take()
        taken += 1
    now[0] += 20  # 3 a minute: one more every 20 s
    assert (taken, limit.available()) == (3, 1)


def test_the_user_stream_subscribes_beside_the_named_rest_base_unless_its_own_is_named(env):
    from trader.wiring import ws_api_base

    env.setenv("TRADER_MODE", "demo")
    env.setenv("BINANCE_API_KEY", "k")
    env.setenv("BINANCE_API_SECRET", "s")
    assert ws_api_base(load_settings()) is None and load_settings().user_stream  # python-binance's demo WebSocket API; on
    env.setenv("TRADER_BINANCE_REST_URL", "http://127.0.0.1:8080")
    assert ws_api_base(load_settings()) == "ws://127.0.0.1:8080/ws-api/v3"
    env.setenv("TRADER_BINANCE_REST_URL", "https://example.test")
    assert ws_api_base(load_settings()) == "wss://example.test/ws-api/v3"
    env.setenv("TRADER_BINANCE_WS_API_URL", "wss://ws.example.test/ws-api/v3")
    env.setenv("TRADER_USER_STREAM", "false")
    assert ws_api_base(load_settings()) == "wss://ws.example.test/ws-api/v3" and not load_settings().user_stream
