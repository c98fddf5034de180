"""The trader's user-data-stream consumer (trader/user_stream.py) on the fake Binance's WebSocket API and real
PostgreSQL: a fill arrives through the stream; the stream is dropped or terminated mid-trading, fills happen while
it is down, and after the resubscription's REST catch-up the ledger is exactly right (each fill once)."""

import time
from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.fake_binance.clients import async_client
from tests.helpers import binance_client
from tests.traders import connector
from trader import account_records, order_records, sleeve_records
from trader.brokers.binance import BinanceBroker
from trader.execution import Executor
from trader.orders import OrderIntent
from trader.transaction import Transaction
from trader.user_stream import UserStream, parse_trade, refresh_open_orders
from trader.user_stream_thread import UserStreamThread

pytestmark = pytest.mark.integration
SLEEVE = "BTCUSDT:1m:sma_cross"
MODE = "testnet"


@pytest.fixture
def fake(fake_binance):
    return fake_binance(price="60000.00", usdt="10000")


def executor_on(database_url, fake) -> Executor:
    conn = connector(database_url)()
    return Executor(lambda: Transaction(conn), BinanceBroker(binance_client(fake, signed=True), MODE, sleep=lambda s: None),
                    sleep=lambda s: None)


def place_limit(executor: Executor, t: int, price: str) -> OrderIntent:
    intent = OrderIntent(sleeve=SLEEVE, symbol="BTCUSDT", side="BUY", quantity=D("0.01"), open_time_ms=t, type="LIMIT",
                         price=D(price), time_in_force="GTC", interval="1m", mode=MODE)
    with executor._tx() as cur:
        order_records.insert_order(cur, intent, MODE, D("60000"))
    assert executor.submit(intent).status == "NEW"
    return intent


def running_stream(database_url, fake) -> UserStreamThread:
    """A ``UserStream`` on its own thread, event loop and database connection, as the trader runs it."""
    conn = connector(database_url)()
    rest = executor_on(database_url, fake)
    return UserStreamThread(UserStream(lambda: async_client(fake), lambda: Transaction(conn), MODE,
                                       lambda: refresh_open_orders(rest, rest._tx), retry_wait=0.1))


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout  # a hang guard, not a timed assertion
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def ledger(db) -> tuple[list, list, D]:
    with db.connect() as c:
        orders = c.execute(sa.text("SELECT client_order_id, status, executed_qty FROM trading.orders ORDER BY client_order_id")).fetchall()
        fills = c.execute(sa.text("SELECT client_order_id, trade_id, quantity FROM trading.fills ORDER BY id")).fetchall()
        held = c.execute(sa.text("SELECT quantity FROM trading.positions WHERE mode = :m AND sleeve = :s"), {"m": MODE, "s": SLEEVE}).scalar()
    return orders, fills, held


@pytest.fixture
def executor(db, database_url, fake):
    executor = executor_on(database_url, fake)
    with executor._tx() as cur:
        sleeve_records.ensure_sleeve(cur, MODE, SLEEVE, "BTCUSDT", "1m", "sma_cross", D("1000"))
        account_records.seed_balance(cur, MODE, "USDT", D("10000"))
    return executor


def test_fills_come_from_the_stream_and_a_drop_or_termination_mid_trading_is_caught_up_exactly_once(db, database_url, fake, executor):
    first = place_limit(executor, 60_000, "59000.00")
    with running_stream(database_url, fake) as stream:
        wait_until(lambda: stream.catch_ups == 1, "the subscription and its catch-up")
        fake.set_price("BTCUSDT", "58990.00")  # fills the first order: only the stream can tell the ledger now
        wait_until(lambda: stream.applied == 1, "the streamed fill")

        second = place_limit(executor, 120_000, "58000.00")
        fake.drop_user_streams()
        fake.set_price("BTCUSDT", "57990.00")  # fills while the stream is down: the event is lost
        wait_until(lambda: stream.catch_ups >= 2, "the resubscription and its catch-up")

        third = place_limit(executor, 180_000, "57000.00")
        fake.terminate_user_streams()
        fake.set_price("BTCUSDT", "56990.00")  # fills during the termination
        wait_until(lambda: stream.catch_ups >= 3, "the resubscription after eventStreamTerminated")
        wait_until(lambda: len(ledger(db)[1]) == 3, "every fill in the ledger")

    orders, fills, held = ledger(db)
    assert [(cid, status, qty) for cid, status, qty in orders] == sorted(
        (i.client_order_id, "FILLED", D("0.01")) for i in (first, second, third))
    assert sorted(t for _, t, _ in fills) == sorted(str(t["id"]) for t in fake.state.engine.trades)
    assert held == D("0.03") - 3 * D("0.00001")  # three fills, 10 bps of BTC commission each, once


def test_a_replayed_event_and_a_foreign_order_change_nothing(db, database_url, fake, executor):
    intent = place_limit(executor, 60_000, "59000.00")
    conn = connector(database_url)()
    stream = UserStream(lambda: None, lambda: Transaction(conn), MODE, lambda: None)
    fake.set_price("BTCUSDT", "58990.00")
    trade = fake.state.engine.trades[0]
    event = {"e": "executionReport", "x": "TRADE", "X": "FILLED", "c": intent.client_order_id, "i": trade["orderId"],
             "l": trade["qty"], "L": trade["price"], "n": trade["commission"], "N": trade["commissionAsset"], "T": trade["time"],
             "t": trade["id"], "z": trade["qty"]}

    applied = [stream.apply(event), stream.apply(event), stream.apply({**event, "c": "someone-else"})]

    assert applied == [True, False, False]
    assert ledger(db)[1] == [(intent.client_order_id, str(trade["id"]), D("0.01"))]


def test_parse_trade_takes_only_trade_executions():
    base = {"e": "executionReport", "c": "kp-1", "X": "FILLED", "i": 32, "l": "2.00000000", "L": "1.00000000", "n": "0.001",
            "N": "BNB", "T": 1719467634105, "t": 7}

    cid, fill, status, order_id = parse_trade({**base, "x": "TRADE"})

    assert (cid, status, order_id, fill.trade_id, fill.quantity, fill.price, fill.fee, fill.fee_asset) == (
        "kp-1", "FILLED", "32", "7", D("2"), D("1"), D("0.001"), "BNB")
    assert parse_trade({**base, "x": "NEW"}) is None and parse_trade({"e": "outboundAccountPosition"}) is None


def test_a_stale_rest_answer_after_a_streamed_fill_does_not_reopen_the_order(db, database_url, fake, executor):
    intent = place_limit(executor, 60_000, "59000.00")
    stale = executor.broker.lookup(intent)  # the main loop's lookup, answered before the fill ...
    conn = connector(database_url)()
    stream = UserStream(lambda: None, lambda: Transaction(conn), MODE, lambda: None)
    fake.set_price("BTCUSDT", "58990.00")
    trade = fake.state.engine.trades[0]
    assert stream.apply({"e": "executionReport", "x": "TRADE", "X": "FILLED", "c": intent.client_order_id, "i": trade["orderId"],
                         "l": trade["qty"], "L": trade["price"], "n": trade["commission"], "N": trade["commissionAsset"],
                         "T": trade["time"], "t": trade["id"], "z": trade["qty"]})

    with executor._tx() as cur:  # ... applied after the stream stored the fill
        order_records.apply_report(cur, MODE, intent, stale)

    orders, fills, held = ledger(db)
    assert stale.status == "NEW" and orders == [(intent.client_order_id, "FILLED", D("0.01"))] and len(fills) == 1
