"""A user's strategy from zero, as the README's "Write your own strategy" tells it: ``new-strategy`` writes it,
``check-strategy`` passes it, ``backtest --strategy NAME`` runs it over a kline file, ``optimize`` tunes it (walk-forward,
studies in PostgreSQL), and ``python -m trader run``
trades it on paper against real PostgreSQL (TRADER_STRATEGY_DIR) — the paper orders are the backtest's trades."""

import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.helpers import sample_rows, seed_features, write_csv
from trader.strategies import build_strategy, register_strategy_dir

pytestmark = pytest.mark.integration
NAME = "my_trend"
SLEEVE = f"BTCUSDT:1m:{NAME}"
ROWS = sample_rows(600)


def trader_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "trader", *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_a_strategy_from_the_template_is_checked_backtested_optimised_and_traded_on_paper(db, database_url, tmp_path):
    strategy_dir = tmp_path / "strategies"
    env = {**os.environ, "TRADER_STRATEGY_DIR": str(strategy_dir), "DATABASE_URL": database_url, "TRADER_MODE": "paper",
           "TRADER_SLEEVES": f"{SLEEVE}:1000", "TRADER_STRATEGY_PARAMS": f'{{"{NAME}": {{"fast": 10, "slow": 30}}}}',
           "TRADER_STALE_INTERVALS": "0", "TRADER_MAX_ORDERS_PER_MINUTE": "0", "TRADER_POLL_INTERVAL": "0.2",
           "TRADER_METRICS_PORT": "0", "TRADER_STARTUP_WAIT": "5", "TRADER_FEE_BPS": "10"}
    created = trader_cli("new-strategy", NAME, env=env)
    assert created.returncode == 0, created.stderr

    checked = trader_cli("check-strategy", NAME, "--bars", "1500", env=env)
    assert checked.returncode == 0 and "no problems found" in checked.stdout, checked.stdout + checked.stderr

    csv = write_csv(tmp_path / "BTCUSDT-1m-sample.csv", ROWS)
    out = tmp_path / "report"
    tested = trader_cli("backtest", "--strategy", NAME, "--csv", str(csv), "--symbol", "BTCUSDT", "--interval", "1m",
                        "--order-quote", "1000", "--out", str(out), "--no-html", "--no-png", env=env)
    assert tested.returncode == 0, tested.stderr
    trades = pd.read_csv(out / "trades.csv", parse_dates=["entry_time", "exit_time"])
    assert len(trades) >= 3

    tuned = trader_cli("optimize", "--strategy", NAME, "--csv", str(csv), "--symbol", "BTCUSDT", "--interval", "1m",
                       "--storage", database_url, "--study", "user-strategy", "--space",
                       '{"fast": {"int": [5, 12]}, "slow": {"int": [20, 40]}, "min_gap_bps": {"float": [0, 5]}}',
                       "--constraint", "fast < slow", "--trials", "4", "--folds", "2", "--min-trades", "1",
                       "--workers", "1", "--no-png", "--no-html", "--no-progress", "--out", str(tmp_path / "tuned"), env=env)
    assert tuned.returncode == 0 and "best parameters: fast=" in tuned.stdout, tuned.stdout + tuned.stderr

    seed_features(db, ROWS)
    run = subprocess.Popen([sys.executable, "-m", "trader", "run"], cwd=ROOT, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    watchdog = threading.Timer(300, run.kill)  # a trader that never trades must fail the test, not hang it
    watchdog.start()
    try:
        for line in run.stdout:  # the trader decides every stored candle on its first step, in time order
            lines.append(line)
            if sum(f"{SLEEVE} SELL" in ln and "filled" in ln for ln in lines) >= 3:
                break
    finally:
        watchdog.cancel()
        run.send_signal(signal.SIGTERM)
        rest, _ = run.communicate(timeout=60)
    assert run.returncode == 0 and "Traceback" not in "".join(lines) + rest, "".join(lines) + rest
    assert f"sleeves={SLEEVE} (1000 fast=10 slow=30 min_gap_bps=0.0)" in "".join(lines)

    with db.connect() as c:
        orders = c.execute(sa.text("SELECT side, signal_open_time FROM trading.orders WHERE mode = 'paper' AND sleeve = :s"
                                   " ORDER BY signal_open_time"), {"s": SLEEVE}).fetchall()
    minute = timedelta(minutes=1)  # a decision fills at the next candle's open, live and in the backtest
    buys = [o.signal_open_time + minute for o in orders if o.side == "BUY"]
    sells = [o.signal_open_time + minute for o in orders if o.side == "SELL"]
    n = min(3, len(trades))
    assert buys[:n] == list(trades.entry_time[:n]) and sells[:n] == list(trades.exit_time[:n])

    register_strategy_dir(strategy_dir)  # and what it decided is the template's signals over the stored features
    features = pd.read_sql("SELECT * FROM market.features ORDER BY open_time", db)
    want = build_strategy(NAME).signals(features)
    with db.connect() as c:
        got = pd.read_sql(sa.text("SELECT open_time, action FROM trading.signals WHERE sleeve = :s ORDER BY open_time"),
                          c, params={"s": SLEEVE})
    assert list(got.action.map({"BUY": 1, "SELL": -1, "HOLD": 0})) == list(want[: len(got)]) and len(got) > 100
