"""Crash drills and reconciliation for protection held by the exchange, on real PostgreSQL and the fake Binance: the
trader killed after the entry fill and before protection, after the legs are recorded and before the list goes out,
and after the venue accepted the list and before the ledger recorded it; on restart exactly one protection set and no
unprotected position. Reconciliation adopts the set it finds for an open position and cancels an orphan."""

from decimal import Decimal as D

import pytest

from tests.helpers import binance_client, expected_sma_cross_orders, sample_rows, seed_features
from tests.integration.test_trader_protection import OCO, SLEEVE, broker_on, events, held, ledger, start_trader
from trader import protection_records
from trader.orders import client_order_id
from trader.reconcile import reconcile

pytestmark = pytest.mark.integration
ROWS = sample_rows(400)
EXPECTED = expected_sma_cross_orders([D(r[4]) for r in ROWS])


class Crash(BaseException):
    """The process dies here: nothing after this line runs, uncommitted work is lost."""


class CrashingBroker:
    """The real broker, except that the process dies around the first ``place_protection`` (``when``: before / after)."""

    def __init__(self, inner, when: str) -> None:
        self.inner, self.mode, self.when = inner, inner.mode, when

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def place_protection(self, legs):
        if self.when == "before":
            raise Crash
        self.inner.place_protection(legs)
        raise Crash


@pytest.fixture
def fake(db, fake_binance):
    seed_features(db, ROWS[: EXPECTED[0][0] + 1])  # up to the first crossover: one BUY
    return fake_binance(price="60000.00", usdt="10000")


def assert_one_set_protecting_the_position(db, database_url, fake):
    entry, stop, tp = ledger(db)
    assert (entry.status, stop.status, tp.status) == ("FILLED", "NEW", "NEW")
    assert stop.executed_qty == 0 and held(database_url) > 0
    (oco,) = fake.lists()
    assert oco["listClientOrderId"] == entry.client_order_id + "-PL"
    open_at_venue = sorted(o["clientOrderId"] for o in fake.orders() if o["status"] == "NEW")
    assert open_at_venue == [stop.client_order_id, tp.client_order_id]
    assert len(events(db, "protection_placed")) == 1


def test_killed_after_the_entry_fill_before_protection(db, database_url, fake, monkeypatch):
    crashing = start_trader(database_url, broker_on(fake))

    def die(name):  # right after the entry's fill is in the ledger, before its protection is recorded
        with crashing._transaction() as cur:
            if protection_records.newest_entry(cur, "testnet", name) is not None:
                raise Crash

    monkeypatch.setattr(crashing.protector, "_record_new_set", die)
    with pytest.raises(Crash):
        crashing.step()
    (entry,) = ledger(db)
    assert entry.status == "FILLED" and fake.lists() == []  # filled, unprotected: the process is dead

    start_trader(database_url, broker_on(fake)).step()  # restart
    assert_one_set_protecting_the_position(db, database_url, fake)


def test_killed_after_recording_the_legs_before_placing_them(db, database_url, fake):
    with pytest.raises(Crash):
        start_trader(database_url, CrashingBroker(broker_on(fake), "before")).step()
    assert [o.status for o in ledger(db)] == ["FILLED", "PENDING_SUBMIT", "PENDING_SUBMIT"] and fake.lists() == []

    start_trader(database_url, broker_on(fake)).step()
    assert_one_set_protecting_the_position(db, database_url, fake)


def test_killed_after_the_venue_accepted_the_set_before_recording_it(db, database_url, fake):
    with pytest.raises(Crash):
        start_trader(database_url, CrashingBroker(broker_on(fake), "after")).step()
    assert [o.status for o in ledger(db)] == ["FILLED", "PENDING_SUBMIT", "PENDING_SUBMIT"] and len(fake.lists()) == 1

    restarted = start_trader(database_url, broker_on(fake))
    diffs = reconcile(restarted._transaction, restarted.executor, ["BTCUSDT"], {"BTC", "USDT"}, accept=True,
                      protector=restarted.protector)  # the start-up reconciliation adopts the set
    restarted.step()
    restarted.step()

    assert [d for d in diffs if d.kind.endswith("open_order")] == []
    assert_one_set_protecting_the_position(db, database_url, fake)
    assert [r[0] for r in fake.requests("/api/v3/orderList/oco")].count("POST") == 1


def test_reconciliation_cancels_an_orphan_set_of_a_closed_position(db, database_url, fake):
    entry = client_order_id(SLEEVE, 1_600_000_000_000, "BUY", "testnet")  # an entry of an earlier run, long closed
    fake.deposit("BTC", "0.01")
    binance_client(fake, signed=True).create_oco_order(
        symbol="BTCUSDT", side="SELL", quantity="0.01", listClientOrderId=entry + "-PL", aboveType="TAKE_PROFIT",
        aboveStopPrice="70000", aboveClientOrderId=entry + "-PT", belowType="STOP_LOSS", belowStopPrice="50000",
        belowClientOrderId=entry + "-PS")
    trader = start_trader(database_url, broker_on(fake))

    diffs = reconcile(trader._transaction, trader.executor, ["BTCUSDT"], {"BTC", "USDT"}, accept=True,
                      protector=trader.protector)

    assert [d for d in diffs if d.kind.endswith("open_order")] == []
    assert all(o["status"] != "NEW" for o in fake.orders())
    with db.connect() as c:
        import sqlalchemy as sa

        lines = c.execute(sa.text("SELECT detail FROM trading.events WHERE kind = 'reconcile' AND detail LIKE 'orphan%'")).scalars().all()
    assert len(lines) == 2 and all("cancelled, now CANCELED" in x for x in lines)
    assert ledger(db) == []
