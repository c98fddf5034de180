"""Real-process crash drills: ``python -m trader run`` (testnet mode, fake Binance, real PostgreSQL) is
SIGKILLed after submit / before record, and after record / before fill, then restarted: exactly one order
per intent on the exchange and in the ledger."""

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.fake_binance import Fault
from tests.helpers import expected_sma_cross_orders, sample_rows, seed_features

pytestmark = pytest.mark.integration
ROWS = sample_rows(400)
FIRST, SIDE = expected_sma_cross_orders([D(r[4]) for r in ROWS])[0]


@pytest.fixture
def fake(fake_binance):
    return fake_binance(price=ROWS[FIRST][4], usdt="10000")


def start(database_url, fake, *args, **env):
    full = {**os.environ, "DATABASE_URL": database_url, "TRADER_MODE": "testnet", "TRADER_BINANCE_REST_URL": fake.url,
            "BINANCE_API_KEY": fake.api_key, "BINANCE_API_SECRET": fake.api_secret, "TRADER_SLEEVES": "BTCUSDT:1m:sma_cross:1000",
            "TRADER_STALE_INTERVALS": "0", "TRADER_POLL_INTERVAL": "0.2",
            # the REST path's crash windows: with the user data stream on, its thread could record the fill before
            # the kill and the second process was stopped while still starting (rc -15 in a run); its drills are in
            # test_trader_user_stream.py
            "TRADER_USER_STREAM": "false", **env}
    return subprocess.Popen([sys.executable, "-m", "trader", "run", *args], cwd=ROOT, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_until(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def ledger_orders(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT client_order_id, status, attempts FROM trading.orders")).fetchall()


def stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


def test_sigkill_after_submit_before_record_then_restart(db, database_url, fake):
    seed_features(db, ROWS[: FIRST + 1])
    fake.inject(Fault("POST", "/api/v3/order", 503, -1007, after_execute=True, delay=3))  # placed; the answer hangs
    first = start(database_url, fake, "--accept-differences")

    wait_until(lambda: len(fake.orders()) == 1 or first.poll() is not None)
    first.kill()  # SIGKILL while the answer is still in flight
    first.wait(10)
    crashed = ledger_orders(db)
    second = start(database_url, fake)
    wait_until(lambda: [o.status for o in ledger_orders(db)] == ["FILLED"] or second.poll() is not None)
    out = stop(second)

    assert [(o.status, o.attempts) for o in crashed] == [("PENDING_SUBMIT", 1)]
    (order,) = ledger_orders(db)
    assert order.attempts == 2 and [o["clientOrderId"] for o in fake.orders()] == [order.client_order_id]
    assert "reconcile: 0 difference(s)" in out and "mode=TESTNET" in out


def test_sigkill_after_record_before_fill_then_restart(db, database_url, fake):
    seed_features(db, ROWS[: FIRST + 1])
    fake.set_price("BTCUSDT", "100000.00")  # the LIMIT BUY rests
    limit = {"TRADER_ORDER_TYPE": "LIMIT", "TRADER_LIMIT_OFFSET_BPS": "50"}
    first = start(database_url, fake, "--accept-differences", **limit)

    wait_until(lambda: [o.status for o in ledger_orders(db)] == ["NEW"] or first.poll() is not None)
    first.kill()
    first.wait(10)
    fake.set_price("BTCUSDT", "1000.00")  # it fills while the trader is down
    second = start(database_url, fake, **limit)
    wait_until(lambda: [o.status for o in ledger_orders(db)] == ["FILLED"] or second.poll() is not None)
    stop(second)

    with db.connect() as c:
        fills = c.execute(sa.text("SELECT count(*) FROM trading.fills")).scalar()
    assert len(fake.orders()) == 1 and fills == 1 == len(fake.state.engine.trades)
