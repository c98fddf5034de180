"""The user data stream inside ``python -m trader run`` (testnet mode, fake Binance, real PostgreSQL): a fill reaches the
ledger from the stream with the REST poll an hour away; an ``eventStreamTerminated`` is followed by a new subscription;
a stream dropped (and held down) while the order fills ends with the ledger right after the REST catch-up; the stream
shows in ``status`` and ``/metrics``; a protected position's stop fill comes from the stream too; ``TRADER_USER_STREAM=false``
leaves it off."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal as D

import psycopg2
import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.fake_binance.server import free_port
from tests.helpers import dsn_of, expected_sma_cross_orders, sample_rows, seed_features
from trader.status import render_status

pytestmark = pytest.mark.integration
ROWS = sample_rows(400)
FIRST, SIDE = expected_sma_cross_orders([D(r[4]) for r in ROWS])[0]
LIMIT = {"TRADER_ORDER_TYPE": "LIMIT", "TRADER_LIMIT_OFFSET_BPS": "50"}


@pytest.fixture
def fake(fake_binance):
    return fake_binance(price="100000.00", usdt="10000")  # the LIMIT BUY rests until the test moves the price


class Trader:
    """``python -m trader run`` with the REST poll an hour apart: after its first step, only the stream (or the
    stream's own catch-up) can move an order."""

    def __init__(self, database_url, fake, **env) -> None:
        self.port = free_port()
        full = {**os.environ, "DATABASE_URL": database_url, "TRADER_MODE": "testnet", "TRADER_BINANCE_REST_URL": fake.url,
                "BINANCE_API_KEY": fake.api_key, "BINANCE_API_SECRET": fake.api_secret,
                "TRADER_SLEEVES": "BTCUSDT:1m:sma_cross:1000", "TRADER_STALE_INTERVALS": "0", "TRADER_POLL_INTERVAL": "3600",
                "TRADER_RETRY_MAX_DELAY": "1", "TRADER_METRICS_PORT": str(self.port), **LIMIT, **env}
        full = {k: v for k, v in full.items() if v is not None}  # env: a setting given as None is left out
        self.proc = subprocess.Popen([sys.executable, "-m", "trader", "run", "--accept-differences"], cwd=ROOT, env=full,
                                     text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def metric(self, name: str) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None  # not serving yet
        found = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
        return float(found.group(1)) if found else None

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, out
        return out


def wait_until(condition, what: str, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout  # a hang guard, not a timed assertion
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the trader exited while waiting for {what}: {proc.communicate()[0]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def ledger(db) -> tuple[list, list]:
    with db.connect() as c:
        orders = c.execute(sa.text("SELECT client_order_id, status, executed_qty FROM trading.orders")).fetchall()
        fills = c.execute(sa.text("SELECT client_order_id, trade_id, quantity FROM trading.fills")).fetchall()
    return orders, fills


def order_lookups(fake) -> int:
    return len([r for r in fake.requests("/api/v3/order") if r[0] == "GET"])


def resting(db, trader: Trader) -> None:
    """Wait for the entry to rest at the exchange, the first loop step to be over and the stream to be subscribed."""
    wait_until(lambda: [o.status for o in ledger(db)[0]] == ["NEW"] and trader.metric("trader_loop_steps_total") == 1
               and trader.metric("trader_user_stream_connected") == 1, "the resting entry and the subscription", trader.proc)


def status_text(database_url) -> str:
    with psycopg2.connect(dsn_of(database_url)) as conn, conn.cursor() as cur:
        return render_status(cur, "testnet", "USDT")


def test_a_fill_comes_from_the_stream_and_a_termination_is_followed_by_a_new_subscription(db, database_url, fake):
    seed_features(db, ROWS[: FIRST + 1])
    trader = Trader(database_url, fake)
    try:
        resting(db, trader)
        lookups = order_lookups(fake)
        fake.terminate_user_streams()  # eventStreamTerminated
        wait_until(lambda: trader.metric("trader_user_stream_subscriptions_total") == 2 and order_lookups(fake) == lookups + 1,
                   "the resubscription and its catch-up (one lookup of the open order)", trader.proc)

        fake.set_price("BTCUSDT", "1000.00")  # the entry fills: no poll is due for an hour, no lookup follows
        wait_until(lambda: [o.status for o in ledger(db)[0]] == ["FILLED"], "the fill in the ledger", trader.proc)
        stream_fills, steps, after = (trader.metric("trader_user_stream_fills_total"), trader.metric("trader_loop_steps_total"),
                                      order_lookups(fake))
        status = status_text(database_url)
    finally:
        out = trader.stop()

    (order,), fills = ledger(db)
    assert [f.trade_id for f in fills] == [str(t["id"]) for t in fake.state.engine.trades] and len(fills) == 1
    assert (stream_fills, steps, after) == (1, 1, lookups + 1)  # the stream told the ledger; neither the loop nor REST did
    assert "user data stream: connected" in status and "2 subscription(s), 1 fill(s) from the stream" in status
    assert "user data stream on" in out and re.search(r"BUY \S+ filled @ \S+ .*\(user data stream\)", out)
    assert "user data stream: not connected" in status_text(database_url)  # the stopped trader left its last state


def test_a_stream_dropped_while_the_order_fills_ends_right_after_the_rest_catch_up(db, database_url, fake):
    seed_features(db, ROWS[: FIRST + 1])
    trader = Trader(database_url, fake)
    try:
        resting(db, trader)
        fake.refuse_user_streams()  # the resubscription is refused until the fill happened: its event is lost
        fake.drop_user_streams()
        wait_until(lambda: trader.metric("trader_user_stream_connected") == 0, "the trader to see the drop", trader.proc)
        fake.set_price("BTCUSDT", "1000.00")  # fills while the stream is down
        assert [o.status for o in ledger(db)[0]] == ["NEW"]  # no poll is due: nothing has told the ledger yet
        fake.refuse_user_streams(False)
        wait_until(lambda: [o.status for o in ledger(db)[0]] == ["FILLED"], "the REST catch-up", trader.proc)
        stream_fills, subscriptions = trader.metric("trader_user_stream_fills_total"), trader.metric("trader_user_stream_subscriptions_total")
        steps = trader.metric("trader_loop_steps_total")
    finally:
        trader.stop()

    (order,), fills = ledger(db)
    (trade,) = fake.state.engine.trades
    assert [(f.trade_id, f.quantity) for f in fills] == [(str(trade["id"]), D(trade["qty"]))] and order.executed_qty == D(trade["qty"])
    assert (stream_fills, subscriptions, steps) == (0, 2, 1)  # the catch-up of the second subscription, not the loop
    with db.connect() as c:
        held = c.execute(sa.text("SELECT quantity FROM trading.positions WHERE mode = 'testnet'")).scalar()
    assert held == D(trade["qty"]) - D(trade["commission"])  # once


def test_the_setting_turns_the_stream_off(db, database_url, fake):
    seed_features(db, ROWS[: FIRST + 1])
    trader = Trader(database_url, fake, TRADER_USER_STREAM="false")
    try:
        wait_until(lambda: trader.metric("trader_loop_steps_total") == 1, "the first step", trader.proc)
        connected = trader.metric("trader_user_stream_connected")
    finally:
        out = trader.stop()

    assert connected is None and fake.user_stream_subscriptions() == [] and "user data stream off" in out
    assert "user data stream: never run in this mode" in status_text(database_url)


PROTECTED = """[[sleeve]]
symbol = "BTCUSDT"
interval = "1m"
strategy = "sma_cross"
allocation = "1000"
stop_loss = "2%"
take_profit = "4%"
"""


def test_a_protected_positions_stop_fill_comes_from_the_stream(db, database_url, fake, tmp_path):
    seed_features(db, ROWS[: FIRST + 1])
    (tmp_path / "sleeves.toml").write_text(PROTECTED)
    trader = Trader(database_url, fake, TRADER_SLEEVES_FILE=str(tmp_path / "sleeves.toml"), TRADER_SLEEVES=None,
                    TRADER_ORDER_TYPE="MARKET")
    try:  # the BUY fills at 100000, its OCO (stop 98000, take-profit 104000) goes out in the same step
        wait_until(lambda: sorted(o.status for o in ledger(db)[0]) == ["FILLED", "NEW", "NEW"]
                   and trader.metric("trader_loop_steps_total") == 1 and trader.metric("trader_user_stream_connected") == 1,
                   "the protected position and the subscription", trader.proc)
        lookups = order_lookups(fake)
        fake.trade("BTCUSDT", "99000.00", "97900.00")  # through the stop: no poll is due for an hour
        wait_until(lambda: sorted(o.status for o in ledger(db)[0]) == ["EXPIRED", "FILLED", "FILLED"], "the exit in the ledger",
                   trader.proc)
        stream_fills, steps, after = (trader.metric("trader_user_stream_fills_total"), trader.metric("trader_loop_steps_total"),
                                      order_lookups(fake))
        protection_fills = trader.metric("trader_user_stream_protection_fills_total")
        wait_until(lambda: "(1 of protection legs)" in status_text(database_url), "the stream's state with the stop's fill",
                   trader.proc)
    finally:
        out = trader.stop()

    orders, fills = ledger(db)
    (stop,) = [o for o in orders if o.client_order_id.endswith("-PS")]
    assert (stream_fills, protection_fills, steps, after) == (1, 1, 1, lookups)  # the stream told the ledger; neither the loop nor REST did
    assert "1 fill(s) from the stream (1 of protection legs)" in status_text(database_url)
    assert sorted(f.client_order_id for f in fills) == [stop.client_order_id[:-3], stop.client_order_id]  # entry, stop: once
    assert re.search(r"SELL \S+ filled @ \S+ .*\(user data stream\)", out)
    with db.connect() as c:
        held = c.execute(sa.text("SELECT quantity FROM trading.positions WHERE mode = 'testnet'")).scalar()
    assert 0 <= held < D("0.00001")
