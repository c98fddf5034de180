"""Modes never share state (issue 12 point 6): paper, testnet and live each have their own sleeve progress,
positions, signals and client order ids; reconciliation compares positions and the account, and a
difference blocks trading until the operator accepts it. Real PostgreSQL and the fake Binance."""

import os
import signal
import subprocess
import sys
from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.helpers import binance_client, expected_sma_cross_orders, sample_rows, seed_features
from tests.traders import connector
from trader import account_records
from trader.__main__ import main
from trader.brokers.binance import BinanceBroker
from trader.brokers.paper import PaperBroker
from trader.loop import Trader
from trader.sleeve import Sleeve
from trader.transaction import db_candles
from trader.strategies import build_strategy

pytestmark = pytest.mark.integration
SLEEVE = "BTCUSDT:1m:sma_cross"
ROWS = sample_rows(400)
EXPECTED = expected_sma_cross_orders([D(r[4]) for r in ROWS])
FIRST_BUY = next(i for i, side in EXPECTED if side == "BUY")
NEXT_SELL = next(i for i, side in EXPECTED if side == "SELL" and i > FIRST_BUY)


@pytest.fixture
def fake(fake_binance):
    return fake_binance(price=ROWS[FIRST_BUY][4], usdt="10000")


def sleeve():
    return Sleeve(name=SLEEVE, symbol="BTCUSDT", interval="1m",
                  strategy=build_strategy("sma_cross"), allocation=D("1000"))


def paper_trader(database_url):
    connect = connector(database_url)
    return Trader(connect, [sleeve()], PaperBroker(db_candles(connect), fee_bps=D("10")), paper_balance=D("10000"))


def testnet_trader(database_url, fake):
    client = binance_client(fake, signed=True)
    trader = Trader(connector(database_url), [sleeve()], BinanceBroker(client, "testnet", sleep=lambda s: None),
                    sleep=lambda s: None)
    with trader._transaction() as cur:
        account_records.seed_balance(cur, "testnet", "USDT", D("10000"))
    return trader


def orders_of(engine, mode):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT client_order_id, side, executed_qty, status FROM trading.orders WHERE mode = :m"
                                 " ORDER BY signal_open_time"), {"m": mode}).fetchall()


def position_of(engine, mode):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT quantity FROM trading.positions WHERE mode = :m AND sleeve = :s"),
                         {"m": mode, "s": SLEEVE}).scalar()


def test_paper_long_then_a_testnet_start_sells_nothing_it_never_bought(db, database_url, fake):
    seed_features(db, ROWS[: FIRST_BUY + 2])
    paper_trader(database_url).step()
    paper_long = position_of(db, "paper")
    assert paper_long > 0 and [o.side for o in orders_of(db, "paper")] == ["BUY"]

    seed_features(db, ROWS[: NEXT_SELL + 2])
    testnet = testnet_trader(database_url, fake)
    testnet.step()

    got = orders_of(db, "testnet")
    assert [o.side for o in got] == ["BUY", "SELL"]  # its own entry first: it decided the history itself
    assert [o["side"] for o in fake.orders()] == ["BUY", "SELL"]
    assert got[1].executed_qty <= got[0].executed_qty  # sold what it bought (less the BTC commission), nothing more
    assert position_of(db, "paper") == paper_long  # paper's position untouched by testnet's trades
    paper_ids, testnet_ids = {o.client_order_id for o in orders_of(db, "paper")}, {o.client_order_id for o in got}
    assert not paper_ids & testnet_ids  # the same sleeve and candle: different client order ids per mode


def test_testnet_long_does_not_block_paper_entries(db, database_url, fake):
    seed_features(db, ROWS[: FIRST_BUY + 2])
    testnet_trader(database_url, fake).step()
    assert position_of(db, "testnet") > 0

    paper_trader(database_url).step()

    assert [o.side for o in orders_of(db, "paper")] == ["BUY"]  # not "already long"
    with db.connect() as c:
        reasons = c.execute(sa.text("SELECT reason FROM trading.signals WHERE mode = 'paper' AND action = 'BUY'")).scalars().all()
    assert reasons and not any("already long" in r for r in reasons)


def test_sleeves_signals_and_positions_are_per_mode_rows(db, database_url, fake):
    seed_features(db, ROWS[: FIRST_BUY + 2])
    paper_trader(database_url).step()
    testnet_trader(database_url, fake).step()

    with db.connect() as c:
        sleeves = c.execute(sa.text("SELECT mode, last_open_time FROM trading.sleeves ORDER BY mode")).fetchall()
        signals = dict(c.execute(sa.text("SELECT mode, count(*) FROM trading.signals GROUP BY mode")).fetchall())
    assert [m for m, _ in sleeves] == ["paper", "testnet"] and sleeves[0][1] == sleeves[1][1]
    assert signals["paper"] == signals["testnet"] > 0


@pytest.fixture
def env(monkeypatch, database_url, fake):
    for k, v in {"DATABASE_URL": database_url, "TRADER_MODE": "testnet", "TRADER_BINANCE_REST_URL": fake.url,
                 "BINANCE_API_KEY": fake.api_key, "BINANCE_API_SECRET": fake.api_secret,
                 "TRADER_SLEEVES": f"{SLEEVE}:1000", "TRADER_STALE_INTERVALS": "0", "TRADER_POLL_INTERVAL": "0.2",
                 "TRADER_METRICS_PORT": "0", "TRADER_STARTUP_WAIT": "5"}.items():
        monkeypatch.setenv(k, v)


def test_a_position_the_account_does_not_hold_blocks_trading_until_the_operator_accepts(db, database_url, fake, env, capsys):
    seed_features(db, ROWS[: FIRST_BUY + 2])
    testnet_trader(database_url, fake).step()
    assert main(["accept-reconciliation"]) == 0  # the ledger adopts the fake's balances: ledger == exchange
    assert main(["reconcile"]) == 0
    held = position_of(db, "testnet")
    client = binance_client(fake, signed=True)
    sold = (held / 2).quantize(D("0.00001"))
    client.create_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=str(sold), newClientOrderId="by-hand-1")
    capsys.readouterr()

    refused = main(["run"])
    out = capsys.readouterr()

    assert refused == 3 and "position BTC" in out.out and "python -m trader accept-reconciliation" in out.err
    assert len(out.err.strip().splitlines()) == 1

    assert main(["accept-reconciliation"]) == 0
    capped = position_of(db, "testnet")
    with db.connect() as c:
        events = c.execute(sa.text("SELECT kind, detail FROM trading.events WHERE mode = 'testnet' AND kind IN ('operator', 'reconcile')"
                                   " ORDER BY id")).fetchall()
    assert capped <= held - sold and capped > 0
    assert any(k == "operator" and "reconciliation accepted" in d for k, d in events)
    assert any(k == "reconcile" and "position of" in d for k, d in events)

    proc = subprocess.Popen([sys.executable, "-m", "trader", "run"], cwd=ROOT, env=dict(os.environ), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "reconcile: 0 difference(s)" in line:
                break
        assert any("reconcile: 0 difference(s)" in ln for ln in lines), "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in "".join(lines) + rest


def test_another_exchange_account_under_the_same_mode_is_a_difference(db, fake, env, capsys):
    assert main(["accept-reconciliation"]) == 0
    assert main(["reconcile"]) == 0
    with db.begin() as c:  # the ledger was kept for another account (e.g. testnet keys were replaced)
        c.execute(sa.text("UPDATE trading.trader_state SET value = '{\"account\": \"uid:999\"}' WHERE key = 'account:testnet'"))

    assert main(["run"]) == 3
    assert "account id: exchange=uid:1 ledger=uid:999" in capsys.readouterr().out
    assert main(["accept-reconciliation"]) == 0 and main(["reconcile"]) == 0


def test_a_supervised_trader_holds_on_a_difference_and_trades_once_the_operator_accepts(db, database_url, fake, env, capsys):
    """Under a supervisor an exit would be restarted into a crash loop: ``run --wait-for-acceptance`` stays up,
    places nothing, and goes on by itself once ``accept-reconciliation`` ran in another shell."""
    seed_features(db, ROWS[: FIRST_BUY + 2])
    testnet_trader(database_url, fake).step()
    assert main(["accept-reconciliation"]) == 0
    client = binance_client(fake, signed=True)
    sold = (position_of(db, "testnet") / 2).quantize(D("0.00001"))
    client.create_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=str(sold), newClientOrderId="by-hand-2")
    with db.connect() as c:
        orders_before = c.execute(sa.text("SELECT count(*) FROM trading.orders WHERE mode = 'testnet'")).scalar()

    proc = subprocess.Popen([sys.executable, "-m", "trader", "run", "--wait-for-acceptance"], cwd=ROOT, env=dict(os.environ),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "trader: holding:" in line:
                break
        assert proc.poll() is None, "".join(lines)  # up, not exited 3
        capsys.readouterr()
        assert main(["accept-reconciliation"]) == 0
        for line in proc.stdout:
            lines.append(line)
            if "reconcile: 0 difference(s)" in line:
                break
        assert any("reconcile: 0 difference(s)" in ln for ln in lines), "".join(lines)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    text = "".join(lines) + rest
    assert proc.returncode == 0 and "Traceback" not in text
    assert sum("trader: holding:" in ln for ln in lines) == 1  # one line while waiting, not one per check
    with db.connect() as c:
        during = c.execute(sa.text("SELECT count(*) FROM trading.orders WHERE mode = 'testnet'")).scalar()
    assert during == orders_before  # nothing was placed while the difference stood (no new candle since)
