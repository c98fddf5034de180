"""Protection fills from the user data stream (issue 16), on the fake Binance and real PostgreSQL: a protected position's
stop fires at the exchange and the stream alone takes it into the ledger (the exit's SELL, the take-profit EXPIRED,
the set closed, the sleeve flat; no REST lookup); the same fill told again over REST moves nothing; and a stream
dropped while the stop fills ends right after the resubscription's REST catch-up, which now looks the legs up too."""

import time
from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.fake_binance.clients import async_client
from tests.helpers import binance_client, expected_sma_cross_orders, sample_rows, seed_features
from tests.traders import connector
from trader import account_records, order_records, protection_records, sleeve_records
from trader.brokers.binance import BinanceBroker
from trader.execution import Executor
from trader.loop import Trader
from trader.protection import Distance, ProtectionSettings
from trader.sleeve import Sleeve
from trader.strategies import build_strategy
from trader.transaction import Transaction
from trader.user_stream import UserStream, refresh_open_orders
from trader.user_stream_thread import UserStreamThread

pytestmark = pytest.mark.integration
MODE, SLEEVE = "testnet", "BTCUSDT:1m:sma_cross"
ROWS = sample_rows(400)
FIRST, SIDE = expected_sma_cross_orders([D(r[4]) for r in ROWS])[0]
OCO = ProtectionSettings(stop_loss=Distance(D(2), "%"), take_profit=Distance(D(4), "%"))
STEP = D("0.00001")  # BTCUSDT's lot step: what the commission leaves of the position is dust below it


def broker_on(fake) -> BinanceBroker:
    return BinanceBroker(binance_client(fake, signed=True), MODE, sleep=lambda s: None)


@pytest.fixture
def protected(db, database_url, fake_binance):
    """A position bought at 60000 with its OCO (stop 58800, take-profit 62400) working at the fake: (fake, trader)."""
    assert SIDE == "BUY"
    seed_features(db, ROWS[: FIRST + 1])
    fake = fake_binance(price="60000.00", usdt="10000")
    sleeve = Sleeve(name=SLEEVE, symbol="BTCUSDT", interval="1m", strategy=build_strategy("sma_cross"), allocation=D("1000"),
                    protection=OCO)
    trader = Trader(connector(database_url), [sleeve], broker_on(fake), sleep=lambda s: None)
    with trader._transaction() as cur:
        account_records.seed_balance(cur, MODE, "USDT", D("10000"))
    trader.step()
    assert [(o.side, o.status) for o in ledger(db)[0]] == [("BUY", "FILLED"), ("SELL", "NEW"), ("SELL", "NEW")]
    return fake, trader


def running_stream(database_url, fake) -> UserStreamThread:
    """The stream as the trader runs it: its own thread, connection and REST catch-up broker."""
    conn = connector(database_url)()
    rest = Executor(lambda: Transaction(conn), broker_on(fake), sleep=lambda s: None)
    return UserStreamThread(UserStream(lambda: async_client(fake), lambda: Transaction(connector(database_url)()), MODE,
                                       lambda: refresh_open_orders(rest, rest._tx), retry_wait=0.1))


def wait_until(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout  # a hang guard, not a timed assertion
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def ledger(db) -> tuple[list, list, D, list]:
    with db.connect() as c:
        orders = c.execute(sa.text("SELECT client_order_id, side, type, status, executed_qty, expiry_reason FROM trading.orders"
                                   " ORDER BY signal_open_time, client_order_id")).fetchall()
        fills = c.execute(sa.text("SELECT client_order_id, trade_id, quantity FROM trading.fills ORDER BY id")).fetchall()
        held = c.execute(sa.text("SELECT quantity FROM trading.positions WHERE mode = :m AND sleeve = :s"),
                         {"m": MODE, "s": SLEEVE}).scalar()
        triggered = c.execute(sa.text("SELECT detail FROM trading.events WHERE kind = 'protection_triggered'")).scalars().all()
    return orders, fills, held, triggered


def rest_lookups(fake) -> int:
    return len([r for r in fake.requests() if r[0] == "GET" and r[1] in ("/api/v3/order", "/api/v3/myTrades")])


def assert_exited_once(db, database_url, fake) -> None:
    """The stop's fill is the exit, once: stop FILLED, take-profit EXPIRED by the OCO, the sleeve flat, one SELL trade."""
    (entry, stop, tp), fills, held, triggered = ledger(db)
    (stop_trade,) = [t for t in fake.state.engine.trades if t["isBuyer"] is False]
    assert (stop.type, stop.status, stop.executed_qty) == ("STOP_LOSS", "FILLED", D(stop_trade["qty"]))
    assert (tp.type, tp.status, tp.expiry_reason) == ("TAKE_PROFIT", "EXPIRED", "OCO_TRIGGER")
    assert [(f.client_order_id, f.trade_id) for f in fills] == [(entry.client_order_id, fills[0].trade_id),
                                                                 (stop.client_order_id, str(stop_trade["id"]))]
    assert 0 <= held < STEP and len(triggered) == 1 and stop.client_order_id in triggered[0]
    with Transaction(connector(database_url)()) as cur:
        assert protection_records.protection_legs(cur, MODE, SLEEVE) == {}  # the set is closed
    assert sorted(o["status"] for o in fake.orders() if o["side"] == "SELL") == ["EXPIRED", "FILLED"]


def test_a_stop_fired_at_the_exchange_reaches_the_ledger_from_the_stream_once(db, database_url, protected):
    fake, trader = protected
    with running_stream(database_url, fake) as stream:
        wait_until(lambda: stream.catch_ups == 1, "the subscription and its catch-up")
        lookups = rest_lookups(fake)
        fake.trade("BTCUSDT", "59500.00", "58700.00")  # through the stop: only the stream can tell the ledger now
        wait_until(lambda: stream.protection_applied == 1, "the stop's fill from the stream")
        applied, after = stream.applied, rest_lookups(fake)

    assert (applied, after) == (1, lookups)  # the stream told the ledger, REST did not
    assert_exited_once(db, database_url, fake)

    with Transaction(connector(database_url)()) as cur:  # the same fill over REST (the protector's lookups) ...
        legs = [i for i, _, _ in order_records.orders_where(cur, MODE, "true", (), protection=True)]
        for leg, report in zip(legs, broker_on(fake).lookup_protection(legs)):
            order_records.apply_report(cur, MODE, leg, report)
    trader.step()  # ... and the loop's next step: nothing moves twice, nothing is sold again
    assert_exited_once(db, database_url, fake)
    assert sorted(o["type"] for o in fake.orders() if o["side"] == "SELL") == ["STOP_LOSS", "TAKE_PROFIT"]  # no other SELL


def test_a_stream_dropped_while_the_stop_fills_ends_right_after_the_rest_catch_up(db, database_url, protected):
    fake, trader = protected
    with running_stream(database_url, fake) as stream:
        wait_until(lambda: stream.catch_ups == 1, "the subscription and its catch-up")
        fake.refuse_user_streams()  # the resubscription is refused until the stop filled: its events are lost
        fake.drop_user_streams()
        wait_until(lambda: not stream.connected, "the stream to see the drop")
        fake.trade("BTCUSDT", "59500.00", "58700.00")
        assert [o.status for o in ledger(db)[0]] == ["FILLED", "NEW", "NEW"]  # nothing has told the ledger yet
        fake.refuse_user_streams(False)
        wait_until(lambda: stream.catch_ups == 2, "the resubscription's REST catch-up")
        applied = stream.applied

    assert applied == 0  # the catch-up did it, not the stream and not the loop (it has not stepped)
    assert_exited_once(db, database_url, fake)
    trader.step()
    assert_exited_once(db, database_url, fake)
    with Transaction(connector(database_url)()) as cur:
        assert sleeve_records.position(cur, MODE, SLEEVE) < STEP
