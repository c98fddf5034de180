"""An entry that went out with its protection as one OTOCO list, combined with the protection generations, the kill
switch and the user data stream, on real PostgreSQL and the fake Binance through python-binance: HALTED + cancel_all
cancels the filled OTOCO's legs and the resume places ONE generation 2, as an OCO (no second entry), whose stop exits
once; a stop that fills with the stream on reaches the ledger from the stream alone, the sleeve flat, no generation 2;
REDUCING + flatten cancels the legs as one request and sells once, no generation 2 (nor after a refused flatten); legs
the venue rejects when the entry fills (they cannot be funded) leave the position told unprotected once, not placed
again; REDUCING or HALTED + cancel_all on an OTOCO whose entry still rests ends the entry and its legs."""

from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.fake_binance import Fault
from tests.integration.test_kill_switch_protection import NO_TRIP, STEP, cancels, sells_traded, trip
from tests.integration.test_protection_generations import CANCEL_ALL, legs
from tests.integration.test_trader_otoco import LIMIT, STOP, TAKE_PROFIT, fake, limit_trader, posts  # noqa: F401 (fixture)
from tests.integration.test_trader_protection import broker_on, events, held, ledger
from tests.integration.test_user_stream_protection import rest_lookups, running_stream, wait_until
from tests.traders import connector
from trader import protection_records
from trader.risk.killswitch import KillPolicy
from trader.transaction import Transaction

pytestmark = pytest.mark.integration
SLEEVE = "BTCUSDT:1m:sma_cross"


def otoco_trader(database_url, fake, policy=KillPolicy()):
    return limit_trader(database_url, broker_on(fake), kill=NO_TRIP, kill_policy=policy)


def entry_id(db) -> str:
    with db.connect() as c:
        return c.execute(sa.text("SELECT client_order_id FROM trading.orders WHERE client_order_id ~ '-B$'")).scalar_one()


@pytest.fixture
def filled(db, database_url, fake):
    """The OTOCO out (entry at the limit, stop 60295.68, take-profit 63987.26), its entry filled, the legs working."""
    trader = otoco_trader(database_url, fake)
    trader.step()
    fake.trade("BTCUSDT", str(LIMIT))
    trader.step()
    entry, stop, tp = ledger(db)
    assert (entry.status, stop.status, tp.status) == ("FILLED", "NEW", "NEW") and held(database_url) > 0
    assert (stop.stop_price, tp.stop_price) == (STOP, TAKE_PROFIT)
    assert [(x["contingencyType"], x["listOrderStatus"]) for x in fake.lists()] == [("OTO", "EXECUTING")]
    assert len(posts(fake, "/api/v3/orderList/otoco")) == 1 and posts(fake, "/api/v3/order") == []
    return trader


def no_generation_2(db) -> bool:
    return set(legs(db)) == {"-PS", "-PT"} and events(db, "protection_replaced") == []


def test_after_halted_cancel_all_and_the_resume_one_oco_replaces_the_otoco_and_its_stop_exits_once(db, database_url, fake,
                                                                                                   filled):
    trip(db, "HALTED")
    halted = otoco_trader(database_url, fake, CANCEL_ALL)
    halted.step()
    halted.step()  # still HALTED: nothing placed again
    first = legs(db)
    assert (first["-PS"].status, first["-PT"].status) == ("CANCELED", "CANCELED") and no_generation_2(db)
    assert [x["listOrderStatus"] for x in fake.lists()] == ["ALL_DONE"] and cancels(fake) == 1

    trip(db, "ACTIVE")  # the operator resumes
    trader = otoco_trader(database_url, fake)
    trader.step()
    trader.step()  # a second step places no third set

    entry = entry_id(db)
    now = legs(db)
    assert set(now) == {"-PS", "-PT", "2-PS", "2-PT"} and (now["2-PS"].status, now["2-PT"].status) == ("NEW", "NEW")
    assert (now["2-PS"].stop_price, now["2-PT"].stop_price) == (STOP, TAKE_PROFIT)
    assert now["2-PS"].quantity == (held(database_url) // STEP) * STEP > 0
    assert sorted((x["listClientOrderId"], x["contingencyType"], x["listOrderStatus"]) for x in fake.lists()) == [
        (entry + "-PL", "OTO", "ALL_DONE"), (entry + "2-PL", "OCO", "EXECUTING")]
    assert len(posts(fake, "/api/v3/orderList/oco")) == 1 and len(posts(fake, "/api/v3/orderList/otoco")) == 1
    assert posts(fake, "/api/v3/order") == [] and len([o for o in fake.orders() if o["side"] == "BUY"]) == 1  # no 2nd entry
    assert len(events(db, "protection_replaced")) == 1 and len(events(db, "protection_placed")) == 2

    fake.trade("BTCUSDT", "61000.00", "60200.00")  # through generation 2's stop
    trader.step()
    trader.step()

    now = legs(db)
    assert (now["2-PS"].status, now["2-PT"].status) == ("FILLED", "EXPIRED") and 0 <= held(database_url) < STEP
    assert [o["clientOrderId"] for o in sells_traded(fake)] == [now["2-PS"].client_order_id]  # the one exit
    assert len(fake.lists()) == 2 and len(events(db, "protection_triggered")) == 1


@pytest.mark.parametrize("since", ["the entry filled", "before the entry filled"])
def test_an_otoco_stop_filled_with_the_stream_on_reaches_the_ledger_from_the_stream_and_nothing_replaces_it(
        db, database_url, fake, since):
    trader = otoco_trader(database_url, fake)
    trader.step()  # the OTOCO out, its entry resting
    if since == "the entry filled":
        fake.trade("BTCUSDT", str(LIMIT))
        trader.step()
        assert [o.status for o in ledger(db)] == ["FILLED", "NEW", "NEW"]
    with running_stream(database_url, fake) as stream:
        wait_until(lambda: stream.catch_ups == 1, "the subscription and its catch-up")
        lookups = rest_lookups(fake)
        if since == "before the entry filled":  # the stream alone takes the entry's fill in (the legs' release is no
            fake.trade("BTCUSDT", str(LIMIT))      # trade: the ledger holds them PENDING_NEW until a lookup)
            wait_until(lambda: stream.applied == 1, "the entry's fill from the stream")
            assert [o.status for o in ledger(db)][0] == "FILLED" and held(database_url) > 0
        fake.trade("BTCUSDT", "61000.00", "60200.00")  # through the OTOCO's stop: only the stream can tell the ledger
        wait_until(lambda: stream.protection_applied == 1, "the stop's fill from the stream")
        applied, after = stream.applied, rest_lookups(fake)
    assert (applied, after) == (1 if since == "the entry filled" else 2, lookups)  # the stream told the ledger, not REST

    def assert_exited_once():
        entry, stop, tp = ledger(db)
        assert (entry.status, stop.status, tp.status, tp.expiry_reason) == ("FILLED", "FILLED", "EXPIRED", "OCO_TRIGGER")
        assert 0 <= held(database_url) < STEP and len(events(db, "protection_triggered")) == 1
        with Transaction(connector(database_url)()) as cur:
            assert protection_records.protection_legs(cur, "testnet", SLEEVE) == {}  # the set is closed
        assert [o["clientOrderId"] for o in sells_traded(fake)] == [stop.client_order_id]
        assert no_generation_2(db) and len(fake.lists()) == 1 and posts(fake, "/api/v3/orderList/oco") == []

    assert_exited_once()
    trader.step()  # the loop's next steps: the flat sleeve gets no generation 2, nothing is sold again
    trader.step()
    assert_exited_once()
    assert len(events(db, "protection_placed")) == 1


def test_reducing_flatten_cancels_the_otoco_legs_as_one_and_sells_once_without_a_generation_2(db, database_url, fake,
                                                                                               filled):
    trip(db, "REDUCING")
    trader = otoco_trader(database_url, fake)
    trader.step()
    trader.step()
    trader.step()  # still REDUCING: the cancelled set is not replaced

    entry, stop, tp, *rest = ledger(db)
    (flatten,) = rest
    assert (stop.status, stop.type, tp.status) == ("CANCELED", "STOP_LOSS", "CANCELED")
    assert cancels(fake) == 1 and [x["listOrderStatus"] for x in fake.lists()] == ["ALL_DONE"]  # one request: the list
    assert (flatten.client_order_id[-2:], flatten.side, flatten.type, flatten.status) == ("-F", "SELL", "MARKET", "FILLED")
    assert [(o["clientOrderId"], o["type"]) for o in sells_traded(fake)] == [(flatten.client_order_id, "MARKET")]  # one SELL
    assert 0 <= held(database_url) < STEP and no_generation_2(db)
    assert posts(fake, "/api/v3/orderList/oco") == [] and len(posts(fake, "/api/v3/order")) == 1  # the flatten only


def test_reducing_places_no_generation_2_while_the_position_stays_after_a_refused_flatten(db, database_url, fake, filled):
    trip(db, "REDUCING")
    fake.inject(Fault("POST", "/api/v3/order", 400, -2010, "Account has insufficient balance for requested action."))
    trader = otoco_trader(database_url, fake)
    for _ in range(3):
        trader.step()  # the legs cancelled, the flatten refused: the position stays, unprotected, while REDUCING

    entry, stop, tp, flatten = ledger(db)
    assert (stop.status, tp.status, flatten.type, flatten.status) == ("CANCELED", "CANCELED", "MARKET", "REJECTED")
    assert held(database_url) > 0 and sells_traded(fake) == [] and cancels(fake) == 1
    assert no_generation_2(db) and posts(fake, "/api/v3/orderList/oco") == [] and len(fake.lists()) == 1


@pytest.mark.parametrize("told_by", ["the loop", "the stream"])
def test_otoco_legs_the_venue_rejects_at_the_fill_leave_the_position_told_unprotected_once(db, database_url, fake, told_by):
    trader = otoco_trader(database_url, fake)
    trader.step()
    fake.state.engine.commission_bps = D(100)  # the fill leaves less BTC than the legs sell: they cannot be funded
    if told_by == "the stream":  # the entry's fill and the legs' REJECTED from the stream, before the loop steps
        with running_stream(database_url, fake) as stream:
            wait_until(lambda: stream.catch_ups == 1, "the subscription and its catch-up")
            fake.trade("BTCUSDT", str(LIMIT))
            wait_until(lambda: stream.applied == 1 and stream.closed == 2, "the fill and the rejected legs from the stream")
    else:
        fake.trade("BTCUSDT", str(LIMIT))
    assert sorted(o["status"] for o in fake.orders()) == ["FILLED", "REJECTED", "REJECTED"]
    for _ in range(4):
        trader.step()

    entry, stop, tp = ledger(db)
    assert (entry.status, stop.status, tp.status) == ("FILLED", "REJECTED", "REJECTED") and held(database_url) > 0
    assert no_generation_2(db) and len(fake.lists()) == 1 and posts(fake, "/api/v3/orderList/oco") == []
    told = [e for e in events(db, "order_error") if "the position is unprotected" in e]
    assert len(told) == 1 and f"{stop.client_order_id} was REJECTED by the venue: not placed again" in told[0]
    with db.connect() as c:
        rule = c.execute(sa.text("SELECT rule FROM trading.events WHERE kind = 'order_error'"
                                 " AND detail ~ 'unprotected'")).scalar_one()
    assert rule == "fatal"


@pytest.mark.parametrize("state, policy", [("REDUCING", KillPolicy()), ("HALTED", CANCEL_ALL)])
def test_the_kill_switch_on_a_resting_otoco_ends_its_entry_and_legs_and_leaves_nothing_open(db, database_url, fake, state,
                                                                                            policy):
    otoco_trader(database_url, fake).step()  # the entry rests (the price, 62000, is above its limit)
    trip(db, state)
    trader = otoco_trader(database_url, fake, policy)
    trader.step()
    trader.step()

    entry, stop, tp = ledger(db)
    assert (entry.status, stop.status, tp.status) == ("CANCELED", "CANCELED", "CANCELED")
    assert [x["listOrderStatus"] for x in fake.lists()] == ["ALL_DONE"]
    assert sorted(o["status"] for o in fake.orders()) == ["CANCELED"] * 3 and held(database_url) == 0
    assert sells_traded(fake) == [] and no_generation_2(db) and posts(fake, "/api/v3/order") == []
    assert [e for e in events(db, "order_error")] == []
