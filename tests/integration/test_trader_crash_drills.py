"""Crash drills on real PostgreSQL and the fake Binance: killed after submit / before record, and after
record / before fill; restarted; exactly one order per intent on the exchange and in the ledger."""

from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.fake_binance import Fault
from tests.helpers import binance_client, expected_sma_cross_orders, sample_rows, seed_features
from tests.traders import connector
from trader import account_records, sleeve_records
from trader.brokers.binance import BinanceBroker
from trader.errors import TransportError
from trader.loop import Trader
from trader.sleeve import RiskConfig, Sleeve
from trader.transaction import Transaction
from trader.strategies import build_strategy

pytestmark = pytest.mark.integration
SLEEVE = "BTCUSDT:1m:sma_cross"
ROWS = sample_rows(400)
EXPECTED = expected_sma_cross_orders([D(r[4]) for r in ROWS])


class Crash(BaseException):
    """The process dies here: nothing after this line runs, uncommitted work is lost."""


class CrashAfterSubmit:
    """The real broker, except that the process dies right after the exchange accepted the first order."""

    def __init__(self, inner) -> None:
        self.inner, self.mode, self.armed = inner, inner.mode, True

    def submit(self, order):
        report = self.inner.submit(order)
        if self.armed:
            self.armed = False
            raise Crash
        return report

    def lookup(self, order):
        return self.inner.lookup(order)

    def rules(self, symbol):
        return self.inner.rules(symbol)

    def fee_bps(self):
        return self.inner.fee_bps()

    def symbol_status(self, symbol):
        return self.inner.symbol_status(symbol)

    def cancel(self, order):
        return self.inner.cancel(order)


@pytest.fixture
def fake(fake_binance):
    return fake_binance(price=ROWS[-1][4], usdt="10000")


def binance_broker(fake, sleeps=None):
    return BinanceBroker(binance_client(fake, signed=True), "testnet",
                         sleep=(sleeps.append if sleeps is not None else lambda s: None))


def start_trader(database_url, broker, **risk):
    sleeve = Sleeve(name=SLEEVE, symbol="BTCUSDT", interval="1m",
                    strategy=build_strategy("sma_cross"), allocation=D("1000"))
    trader = Trader(connector(database_url), [sleeve], broker, risk=RiskConfig(**risk), sleep=lambda s: None)
    with trader._transaction() as cur:
        account_records.seed_balance(cur, "testnet", "USDT", D("10000"))
    return trader


def ledger_orders(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT client_order_id, side, status, attempts, executed_qty FROM trading.orders"
                                 " ORDER BY signal_open_time")).fetchall()


def ledger_fills(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT client_order_id, trade_id, quantity FROM trading.fills ORDER BY id")).fetchall()


def exchange_orders_per_client_id(fake):
    counts = {}
    for o in fake.orders():
        counts[o["clientOrderId"]] = counts.get(o["clientOrderId"], 0) + 1
    return counts


def test_killed_after_submit_before_record_then_restarted_orders_exactly_once(db, database_url, fake):
    seed_features(db, ROWS)
    crashing = start_trader(database_url, CrashAfterSubmit(binance_broker(fake)))

    with pytest.raises(Crash):
        crashing.step()
    after_crash = ledger_orders(db)
    start_trader(database_url, binance_broker(fake)).step()  # restart

    assert [(o.side, o.status, o.attempts) for o in after_crash] == [(EXPECTED[0][1], "PENDING_SUBMIT", 1)]
    got = ledger_orders(db)
    assert [o.side for o in got] == [s for _, s in EXPECTED]
    assert all(o.status == "FILLED" for o in got)
    assert exchange_orders_per_client_id(fake) == {o.client_order_id: 1 for o in got}
    assert len(ledger_fills(db)) == len(fake.state.engine.trades) == len(got)


def test_an_unknown_submit_outcome_is_looked_up_not_resent(db, database_url, fake):
    seed_features(db, ROWS[: EXPECTED[0][0] + 1])  # up to the first crossover
    fake.inject(Fault("POST", "/api/v3/order", 503, -1007, after_execute=True))
    trader = start_trader(database_url, binance_broker(fake))

    trader.step()
    first = ledger_orders(db)
    trader.step()

    assert [(o.status, o.attempts) for o in first] == [("PENDING_SUBMIT", 1)]
    assert [(o.status, o.attempts) for o in ledger_orders(db)] == [("FILLED", 2)]
    assert len(fake.orders()) == 1
    posts = fake.requests("/api/v3/order")
    assert [r[0] for r in posts] == ["POST", "GET", "GET"][: len(posts)] and [r[0] for r in posts].count("POST") == 1


def test_429_on_submit_waits_retry_after_then_places_once(db, database_url, fake):
    seed_features(db, ROWS[: EXPECTED[0][0] + 1])
    fake.inject(Fault("POST", "/api/v3/order", 429, -1003, retry_after=3))
    sleeps = []
    sleeve = Sleeve(name=SLEEVE, symbol="BTCUSDT", interval="1m",
                    strategy=build_strategy("sma_cross"), allocation=D("1000"))
    trader = Trader(connector(database_url), [sleeve], binance_broker(fake), sleep=sleeps.append)
    with trader._transaction() as cur:
        account_records.seed_balance(cur, "testnet", "USDT", D("10000"))

    trader.step()

    assert sleeps == [3.0]
    assert [(o.status, o.attempts) for o in ledger_orders(db)] == [("FILLED", 2)]
    assert len(fake.orders()) == 1
    with db.connect() as c:
        errors = c.execute(sa.text("SELECT rule, detail FROM trading.events WHERE kind = 'order_error'")).fetchall()
    assert [e.rule for e in errors] == ["retryable"] and "-1003" in errors[0].detail


def test_killed_after_record_before_fill_then_restarted_records_the_fill_once(db, database_url, fake):
    i, side = EXPECTED[0]
    seed_features(db, ROWS[: i + 1])
    fake.set_price("BTCUSDT", "100000.00")  # far above the limit: the BUY rests on the book
    risk = dict(order_type="LIMIT", limit_tif="GTC", limit_offset_bps=D("50"))

    start_trader(database_url, binance_broker(fake), **risk).step()  # records NEW ... and the process dies
    resting = ledger_orders(db)
    fake.set_price("BTCUSDT", "1000.00")  # while it is down, the order fills
    start_trader(database_url, binance_broker(fake), **risk).step()  # restart
    start_trader(database_url, binance_broker(fake), **risk).step()  # and again

    assert [(o.side, o.status) for o in resting] == [(side, "NEW")]
    (order,) = ledger_orders(db)
    assert order.status == "FILLED" and len(fake.orders()) == 1
    assert [f.quantity for f in ledger_fills(db)] == [order.executed_qty]
    with Transaction(connector(database_url)()) as cur:
        held = sleeve_records.position(cur, "testnet", SLEEVE)
    assert held == order.executed_qty - order.executed_qty * D("0.001")  # commission paid in BTC


class UnreachableOnce(CrashAfterSubmit):
    """exchangeInfo cannot be fetched the first time it is needed."""

    def rules(self, symbol):
        if self.armed:
            self.armed = False
            raise TransportError("cannot talk to Binance (ConnectionError)")
        return self.inner.rules(symbol)

    def submit(self, order):
        return self.inner.submit(order)


def test_an_unreachable_exchange_while_deciding_defers_the_candle_not_the_process(db, database_url, fake):
    i, side = EXPECTED[0]
    seed_features(db, ROWS[: i + 1])
    trader = start_trader(database_url, UnreachableOnce(binance_broker(fake)))

    trader.step()
    deferred = ledger_orders(db)
    trader.step()

    assert deferred == []
    assert [(o.side, o.status) for o in ledger_orders(db)] == [(side, "FILLED")]
    with db.connect() as c:
        kinds = c.execute(sa.text("SELECT kind FROM trading.events")).scalars().all()
    assert kinds == ["retry"]
