"""A protection set that ended while its position is still open is replaced, once (issue 16), on the fake Binance and
real PostgreSQL: HALTED + cancel_all cancels the set, the resume places generation 2 (``...-B2-PL/-PS/-PT``, the
position's quantity now, the prices of the entry), whose stop then exits the position once; the trader killed between
recording generation 2 and placing it (or after the venue took it) places exactly one generation 2 on restart; a set the
venue expired is replaced once; a set the venue rejected is not placed again, the position told unprotected once."""

from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.fake_binance import Fault
from tests.integration.test_kill_switch_protection import OCO, MODE, NO_TRIP, SLEEVE, STEP, cancels, sells_traded, trip
from tests.integration.test_trader_protection_recovery import Crash, CrashingBroker
from tests.helpers import binance_client, expected_sma_cross_orders, sample_rows, seed_features
from tests.traders import connector
from trader import account_records
from trader.brokers.binance import BinanceBroker
from trader.loop import Trader
from trader.reconcile import reconcile
from trader.risk.killswitch import KillPolicy
from trader.sleeve import RiskConfig, Sleeve
from trader.strategies import build_strategy

pytestmark = pytest.mark.integration
ROWS = sample_rows(400)
FIRST, SIDE = expected_sma_cross_orders([D(r[4]) for r in ROWS])[0]
CANCEL_ALL = KillPolicy(on_halted="cancel_all")


def broker_on(fake):
    return BinanceBroker(binance_client(fake, signed=True), MODE, sleep=lambda s: None)


def start_trader(database_url, fake, policy=KillPolicy(), broker=None) -> Trader:
    sleeve = Sleeve(name=SLEEVE, symbol="BTCUSDT", interval="1m", strategy=build_strategy("sma_cross"), allocation=D("1000"),
                    protection=OCO)
    trader = Trader(connector(database_url), [sleeve], broker or broker_on(fake),
                    risk=RiskConfig(kill=NO_TRIP, kill_policy=policy), sleep=lambda s: None)
    with trader._transaction() as cur:
        account_records.seed_balance(cur, MODE, "USDT", D("10000"))
    return trader


def legs(db) -> dict[str, sa.Row]:
    """The protection legs by their id's tail after the entry's ``-B`` (``-PS``, ``2-PT``, ...)."""
    with db.connect() as c:
        rows = c.execute(sa.text("SELECT client_order_id, status, quantity, stop_price, list_client_order_id FROM trading.orders"
                                 " WHERE client_order_id ~ '-P[ST]$' ORDER BY client_order_id")).fetchall()
    return {r.client_order_id.rsplit("-B", 1)[1]: r for r in rows}


def entry_and_held(db) -> tuple[str, D]:
    with db.connect() as c:
        entry = c.execute(sa.text("SELECT client_order_id FROM trading.orders WHERE client_order_id ~ '-B$'")).scalar_one()
        held = c.execute(sa.text("SELECT quantity FROM trading.positions WHERE mode = :m AND sleeve = :s"),
                         {"m": MODE, "s": SLEEVE}).scalar()
    return entry, held


def events(db, kind: str) -> list[str]:
    with db.connect() as c:
        return c.execute(sa.text("SELECT detail FROM trading.events WHERE kind = :k ORDER BY id"), {"k": kind}).scalars().all()


def oco_posts(fake) -> int:
    return [r[0] for r in fake.requests("/api/v3/orderList/oco")].count("POST")


@pytest.fixture
def fake(fake_binance):
    assert SIDE == "BUY"
    return fake_binance(price="60000.00", usdt="10000")


@pytest.fixture
def cancelled(db, database_url, fake):
    """Long at 60000; its OCO (stop 58800, take-profit 62400) cancelled by HALTED + cancel_all, then the operator resumes."""
    seed_features(db, ROWS[: FIRST + 1])
    start_trader(database_url, fake).step()
    trip(db, "HALTED")
    halted = start_trader(database_url, fake, CANCEL_ALL)
    halted.step()
    halted.step()  # still HALTED: nothing placed again
    first = legs(db)
    assert (first["-PS"].status, first["-PT"].status) == ("CANCELED", "CANCELED") and len(first) == 2
    assert [x["listOrderStatus"] for x in fake.lists()] == ["ALL_DONE"] and cancels(fake) == 1
    trip(db, "ACTIVE")  # python -m trader resume
    return first


def assert_generation_2_protects(db, fake) -> None:
    entry, held = entry_and_held(db)
    now = legs(db)
    assert set(now) == {"-PS", "-PT", "2-PS", "2-PT"}
    assert (now["2-PS"].status, now["2-PT"].status) == ("NEW", "NEW")
    assert (now["2-PS"].stop_price, now["2-PT"].stop_price) == (D("58800"), D("62400"))  # the entry's prices
    assert now["2-PS"].quantity == now["2-PT"].quantity == (held // STEP) * STEP > 0
    assert now["2-PS"].list_client_order_id == entry + "2-PL" and len(now["2-PS"].client_order_id) <= 36
    assert sorted((x["listClientOrderId"], x["listOrderStatus"]) for x in fake.lists()) == [
        (entry + "-PL", "ALL_DONE"), (entry + "2-PL", "EXECUTING")]
    assert oco_posts(fake) == 2 and len(events(db, "protection_placed")) == 2


def test_after_resume_the_cancelled_set_is_replaced_once_and_its_stop_exits_once(db, database_url, fake, cancelled):
    trader = start_trader(database_url, fake)
    trader.step()
    trader.step()  # a second step places no third set
    assert_generation_2_protects(db, fake)
    (replaced,) = events(db, "protection_replaced")
    assert "2-PL: generation 2" in replaced

    fake.trade("BTCUSDT", "59500.00", "58700.00")  # through the new stop
    trader.step()
    trader.step()

    now = legs(db)
    _, held = entry_and_held(db)
    assert (now["2-PS"].status, now["2-PT"].status) == ("FILLED", "EXPIRED") and 0 <= held < STEP
    assert [o["clientOrderId"] for o in sells_traded(fake)] == [now["2-PS"].client_order_id]  # the one exit
    assert len(fake.lists()) == 2 and len(events(db, "protection_triggered")) == 1


def test_killed_after_recording_generation_2_before_placing_it(db, database_url, fake, cancelled):
    with pytest.raises(Crash):
        start_trader(database_url, fake, broker=CrashingBroker(broker_on(fake), "before")).step()
    assert (legs(db)["2-PS"].status, legs(db)["2-PT"].status) == ("PENDING_SUBMIT", "PENDING_SUBMIT") and oco_posts(fake) == 1

    restarted = start_trader(database_url, fake)
    restarted.step()
    restarted.step()
    assert_generation_2_protects(db, fake)


def test_killed_after_the_venue_took_generation_2_before_recording_it(db, database_url, fake, cancelled):
    with pytest.raises(Crash):
        start_trader(database_url, fake, broker=CrashingBroker(broker_on(fake), "after")).step()
    assert legs(db)["2-PS"].status == "PENDING_SUBMIT" and oco_posts(fake) == 2  # at the venue, not in the ledger

    restarted = start_trader(database_url, fake)
    diffs = reconcile(restarted._transaction, restarted.executor, ["BTCUSDT"], {"BTC", "USDT"}, accept=True,
                      protector=restarted.protector)  # the start-up reconciliation adopts it (not an orphan)
    restarted.step()
    restarted.step()

    assert [d for d in diffs if d.kind.endswith("open_order")] == []
    assert_generation_2_protects(db, fake)
    assert "found at the venue: adopted" in events(db, "protection_placed")[-1]


def expire_at_venue(fake, reason: str = "INSUFFICIENT_LIQUIDITY") -> None:
    """The venue ends the open protection legs itself (no request of the trader's)."""
    with fake.state.lock:
        engine, now = fake.state.engine, fake.state.now_ms()
        for order in [o for o in engine.orders.values() if o["status"] == "NEW" and o["orderListId"] != -1]:
            engine.expire(order, now, reason)
        engine.flush(now)


def test_a_set_the_venue_expired_is_replaced_once(db, database_url, fake):
    seed_features(db, ROWS[: FIRST + 1])
    trader = start_trader(database_url, fake)
    trader.step()
    expire_at_venue(fake)
    trader.step()  # the lookup applies EXPIRED, then generation 2 is recorded and placed
    trader.step()

    now = legs(db)
    assert (now["-PS"].status, now["-PT"].status) == ("EXPIRED", "EXPIRED")
    assert_generation_2_protects(db, fake)


def test_a_set_the_venue_rejected_is_not_placed_again_and_the_position_is_told_unprotected_once(db, database_url, fake,
                                                                                               cancelled):
    fake.inject(Fault("POST", "/api/v3/orderList/oco", 400, -2010, "Account has insufficient balance for requested action."))
    trader = start_trader(database_url, fake)
    trader.step()  # generation 2 refused
    trader.step()
    trader.step()

    now = legs(db)
    assert (now["2-PS"].status, now["2-PT"].status) == ("REJECTED", "REJECTED") and set(now) == {"-PS", "-PT", "2-PS", "2-PT"}
    assert oco_posts(fake) == 2 and len(fake.lists()) == 1  # asked once, no generation 3
    told = [e for e in events(db, "order_error") if "the position is unprotected" in e]
    assert len(told) == 1 and "2-PS was REJECTED by the venue: not placed again" in told[0]


def test_the_new_set_sells_what_the_sleeve_holds_now(db, database_url, fake, cancelled):
    with db.begin() as c:  # a partial exit while the set was away: the sleeve holds a third of it, off the lot step
        c.execute(sa.text("UPDATE trading.positions SET quantity = quantity / 3 WHERE mode = :m AND sleeve = :s"),
                  {"m": MODE, "s": SLEEVE})
    start_trader(database_url, fake).step()

    assert_generation_2_protects(db, fake)  # its quantity: the position now, rounded down to the step
    now = legs(db)
    assert now["2-PS"].quantity < cancelled["-PS"].quantity and now["2-PS"].quantity != entry_and_held(db)[1]
