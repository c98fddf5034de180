"""Every bad trader setting and every unreachable dependency: ONE line naming the setting, no traceback.

The real CLI (``python -m trader``) runs in a subprocess. Exit 2: a bad value (waiting cannot fix it);
exit 1: a dependency still unreachable after ``TRADER_STARTUP_WAIT`` (the message says how long).
The table must cover every field of ``TraderSettings``: a new setting without a bad-value case fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa

from klinepipe.db import ensure_database
from trader.config import TraderSettings

KEYS = {"BINANCE_API_KEY": "k" * 16, "BINANCE_API_SECRET": "s" * 16}

# field -> (extra environment, the setting's name the line must contain)
BAD_VALUES = {
    "mode": ({"TRADER_MODE": "mainnet"}, "TRADER_MODE"),
    "database_url": ({"DATABASE_URL": "garbage"}, "DATABASE_URL"),
    "sleeves": ({"TRADER_SLEEVES": "BTCUSDT:7m:sma_cross"}, "TRADER_SLEEVES"),
    "strategy_params": ({"TRADER_STRATEGY_PARAMS": "{bad json"}, "TRADER_STRATEGY_PARAMS"),
    "sleeves_file": ({"TRADER_SLEEVES_FILE": "/nonexistent/sleeves.toml"}, "TRADER_SLEEVES_FILE"),
    "strategy_dir": ({"TRADER_STRATEGY_DIR": "/nonexistent/strategies"}, "TRADER_STRATEGY_DIR"),
    "order_quote": ({"TRADER_ORDER_QUOTE": "-1"}, "TRADER_ORDER_QUOTE"),
    "order_type": ({"TRADER_ORDER_TYPE": "STOP"}, "TRADER_ORDER_TYPE"),
    "limit_tif": ({"TRADER_LIMIT_TIF": "FOK"}, "TRADER_LIMIT_TIF"),
    "limit_offset_bps": ({"TRADER_LIMIT_OFFSET_BPS": "-1"}, "TRADER_LIMIT_OFFSET_BPS"),
    "qty_step": ({"TRADER_QTY_STEP": "0"}, "TRADER_QTY_STEP"),
    "fee_bps": ({"TRADER_FEE_BPS": "-1"}, "TRADER_FEE_BPS"),
    "slippage_bps": ({"TRADER_SLIPPAGE_BPS": "abc"}, "TRADER_SLIPPAGE_BPS"),
    "paper_balance": ({"TRADER_PAPER_BALANCE": "-5"}, "TRADER_PAPER_BALANCE"),
    "poll_interval": ({"TRADER_POLL_INTERVAL": "0"}, "TRADER_POLL_INTERVAL"),
    "metrics_port": ({"TRADER_METRICS_PORT": "70000"}, "TRADER_METRICS_PORT"),
    "metrics_host": ({"TRADER_METRICS_HOST": "everywhere"}, "TRADER_METRICS_HOST"),
    "max_symbol_notional": ({"TRADER_MAX_SYMBOL_NOTIONAL": "-1"}, "TRADER_MAX_SYMBOL_NOTIONAL"),
    "max_total_notional": ({"TRADER_MAX_TOTAL_NOTIONAL": "lots"}, "TRADER_MAX_TOTAL_NOTIONAL"),
    "max_orders_per_minute": ({"TRADER_MAX_ORDERS_PER_MINUTE": "1.5"}, "TRADER_MAX_ORDERS_PER_MINUTE"),
    "max_daily_loss": ({"TRADER_MAX_DAILY_LOSS": "2"}, "TRADER_MAX_DAILY_LOSS"),
    "max_drawdown": ({"TRADER_MAX_DRAWDOWN": "-0.1"}, "TRADER_MAX_DRAWDOWN"),
    "stale_intervals": ({"TRADER_STALE_INTERVALS": "-1"}, "TRADER_STALE_INTERVALS"),
    "staleness_basis": ({"TRADER_STALENESS_BASIS": "wall"}, "TRADER_STALENESS_BASIS"),
    "binance_api_key": ({"TRADER_MODE": "testnet", "BINANCE_API_SECRET": "s" * 16}, "BINANCE_API_KEY"),
    "binance_api_secret": ({"TRADER_MODE": "testnet", "BINANCE_API_KEY": "k" * 16}, "BINANCE_API_SECRET"),
    "binance_key_file": ({"TRADER_MODE": "testnet", "TRADER_BINANCE_KEY_FILE": "/nonexistent/keys"}, "TRADER_BINANCE_KEY_FILE"),
    "binance_rest_url": ({"TRADER_BINANCE_REST_URL": "localhost:8080"}, "TRADER_BINANCE_REST_URL"),
    "binance_ws_api_url": ({"TRADER_BINANCE_WS_API_URL": "http://127.0.0.1:8080/ws-api/v3"}, "TRADER_BINANCE_WS_API_URL"),
    "user_stream": ({"TRADER_USER_STREAM": "sometimes"}, "TRADER_USER_STREAM"),
    "recv_window": ({"TRADER_RECV_WINDOW": "70000"}, "TRADER_RECV_WINDOW"),
    "startup_wait": ({"TRADER_STARTUP_WAIT": "-1"}, "TRADER_STARTUP_WAIT"),
    "retry_max_delay": ({"TRADER_RETRY_MAX_DELAY": "0"}, "TRADER_RETRY_MAX_DELAY"),
    "self_trade_prevention": ({"TRADER_SELF_TRADE_PREVENTION": "EXPIRE"}, "TRADER_SELF_TRADE_PREVENTION"),
    "kill_reducing": ({"TRADER_KILL_REDUCING": "sell"}, "TRADER_KILL_REDUCING"),
    "kill_halted": ({"TRADER_KILL_HALTED": "panic"}, "TRADER_KILL_HALTED"),
    "notify_webhook_url": ({"TRADER_NOTIFY_WEBHOOK_URL": "hooks.example"}, "TRADER_NOTIFY_WEBHOOK_URL"),
    "notify_webhook_secret": ({"TRADER_NOTIFY_WEBHOOK_SECRET": " "}, "TRADER_NOTIFY_WEBHOOK_SECRET"),
    "notify_webhook_secret_file": ({"TRADER_NOTIFY_WEBHOOK_SECRET_FILE": "/nonexistent/s"}, "TRADER_NOTIFY_WEBHOOK_SECRET_FILE"),
    "telegram_bot_token": ({"TRADER_TELEGRAM_BOT_TOKEN": " "}, "TRADER_TELEGRAM_BOT_TOKEN"),
    "telegram_bot_token_file": ({"TRADER_TELEGRAM_BOT_TOKEN_FILE": "/nonexistent/t", "TRADER_TELEGRAM_CHAT_ID": "42"},
                                "TRADER_TELEGRAM_BOT_TOKEN_FILE"),
    "telegram_chat_id": ({"TRADER_TELEGRAM_CHAT_ID": "my chat"}, "TRADER_TELEGRAM_CHAT_ID"),
    "telegram_api_url": ({"TRADER_TELEGRAM_API_URL": "api.telegram.org"}, "TRADER_TELEGRAM_API_URL"),
    "notify_rate_per_minute": ({"TRADER_NOTIFY_RATE_PER_MINUTE": "0"}, "TRADER_NOTIFY_RATE_PER_MINUTE"),
    "notify_max_delay": ({"TRADER_NOTIFY_MAX_DELAY": "-1"}, "TRADER_NOTIFY_MAX_DELAY"),
    "notify_max_age_hours": ({"TRADER_NOTIFY_MAX_AGE_HOURS": "0"}, "TRADER_NOTIFY_MAX_AGE_HOURS"),
}

STRATEGY_CASES = {
    "unknown strategy": ({"TRADER_SLEEVES": "BTCUSDT:1m:moon"}, "TRADER_SLEEVES"),
    "fast > slow": ({"TRADER_STRATEGY_PARAMS": '{"sma_cross": {"fast": 40, "slow": 30}}'}, "TRADER_STRATEGY_PARAMS"),
    "unknown parameter": ({"TRADER_STRATEGY_PARAMS": '{"sma_cross": {"fats": 4}}'}, "TRADER_STRATEGY_PARAMS"),
    "params of an unknown strategy": ({"TRADER_STRATEGY_PARAMS": '{"moon": {}}'}, "TRADER_STRATEGY_PARAMS"),
    "params not an object": ({"TRADER_STRATEGY_PARAMS": "[1, 2]"}, "TRADER_STRATEGY_PARAMS"),
    "wrong parameter type": ({"TRADER_STRATEGY_PARAMS": '{"sma_cross": {"fast": "x"}}'}, "TRADER_STRATEGY_PARAMS"),
    "parameter out of range": ({"TRADER_STRATEGY_PARAMS": '{"sma_cross": {"fast": 1}}'}, "fast must be int 2..500"),
    "a sleeve without strategy": ({"TRADER_SLEEVES": "BTCUSDT:1m"}, "TRADER_SLEEVES"),
    "database_url missing": ({"DATABASE_URL": None}, "DATABASE_URL"),
    "key file readable by others": ({"TRADER_MODE": "testnet", "TRADER_BINANCE_KEY_FILE": "{world_readable}"}, "chmod 600"),
}


def run_cli(env_extra: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADER_", "BINANCE_")) and k != "DATABASE_URL"}
    env.update({"DATABASE_URL": "postgresql://127.0.0.1:1/never_reached", "TRADER_STARTUP_WAIT": "1"})
    for k, v in env_extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return subprocess.run([sys.executable, "-m", "trader", *args], env=env, capture_output=True, text=True, timeout=timeout)


def assert_one_line(result: subprocess.CompletedProcess, code: int, *names: str) -> str:
    out = (result.stdout + result.stderr).strip()
    assert "Traceback" not in out, out
    assert len(out.splitlines()) == 1, out
    assert result.returncode == code, out
    for name in names:
        assert name in out, out
    return out


def test_the_table_covers_every_trader_setting():
    assert set(BAD_VALUES) == set(TraderSettings.model_fields)


@pytest.mark.parametrize("field", sorted(BAD_VALUES))
def test_a_bad_value_of_every_setting_is_one_line_naming_it_exit_2(field):
    env, name = BAD_VALUES[field]

    assert_one_line(run_cli(env, "run"), 2, name)


@pytest.mark.parametrize("case", sorted(STRATEGY_CASES))
def test_bad_strategy_settings_are_one_line_exit_2(case, tmp_path):
    env, name = STRATEGY_CASES[case]
    if "{world_readable}" in env.values():
        keys = tmp_path / "keys"
        keys.write_text("BINANCE_API_KEY=abc\nBINANCE_API_SECRET=def\n")
        keys.chmod(0o644)
        env = {k: str(keys) if v == "{world_readable}" else v for k, v in env.items()}

    out = assert_one_line(run_cli(env, "run"), 2, name)

    assert "def" not in out.split("chmod")[0] or "abc" not in out  # the key file's contents are never shown


@pytest.fixture(scope="module")
def unmigrated_url(pg_admin_url) -> str:
    name = f"kp_unmigrated_{uuid.uuid4().hex[:8]}"
    ensure_database(pg_admin_url, name)
    return sa.engine.make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)


def test_postgres_refused_is_one_line_exit_1_saying_how_long_it_waited():
    out = assert_one_line(run_cli({"DATABASE_URL": "postgresql://127.0.0.1:1/x"}, "run"), 1, "DATABASE_URL")

    assert "Connection refused" in out and "1 s" in out and "TRADER_STARTUP_WAIT" in out


@pytest.mark.parametrize("url", ["garbage", "postgresql+psycopg2://u@127.0.0.1:1/x?nonsense=1", "mysql://u@h/x"])
def test_a_garbage_database_url_is_one_line_exit_2(url):
    assert_one_line(run_cli({"DATABASE_URL": url}, "run"), 2, "DATABASE_URL")


def test_a_missing_database_is_one_line_exit_2(pg_admin_url):
    missing = sa.engine.make_url(pg_admin_url).set(database="kp_no_such_db").render_as_string(hide_password=False)

    out = assert_one_line(run_cli({"DATABASE_URL": missing}, "run"), 2, "DATABASE_URL")

    assert "kp_no_such_db" in out


def test_an_unmigrated_database_is_one_line_exit_1_after_the_wait(unmigrated_url):
    out = assert_one_line(run_cli({"DATABASE_URL": unmigrated_url}, "run"), 1, "DATABASE_URL")

    assert "not migrated" in out and "1 s" in out


def test_binance_unreachable_is_one_line_exit_1_after_the_wait(database_url, engine):
    env = {"DATABASE_URL": database_url, "TRADER_MODE": "testnet", "TRADER_BINANCE_REST_URL": "http://127.0.0.1:1",
           "TRADER_METRICS_PORT": "0", **KEYS}

    out = assert_one_line(run_cli(env, "run"), 1, "Binance")

    assert "TRADER_STARTUP_WAIT" in out and KEYS["BINANCE_API_KEY"] not in out
