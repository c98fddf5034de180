"""The kill switch with protected positions (issue 16), on the fake Binance and real PostgreSQL. REDUCING + flatten
cancels the position's protection set first (one cancel: the OCO list), then flattens with one MARKET SELL, each step
an event; a stop that filled meanwhile leaves nothing to flatten (no second SELL); a set whose cancel is refused blocks
the flatten. HALTED keeps the sets working by default (``cancel``: a stop fired while halted is the exit, a position
without a set gets one), and ``cancel_all`` cancels them as sets and places none until the operator resumes."""

from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.fake_binance import Fault
from tests.helpers import binance_client, expected_sma_cross_orders, sample_rows, seed_features
from tests.traders import connector
from trader import account_records
from trader.brokers.binance import BinanceBroker
from trader.loop import Trader
from trader.protection import Distance, ProtectionSettings
from trader.risk.killswitch import KillLimits, KillPolicy
from trader.sleeve import RiskConfig, Sleeve
from trader.strategies import build_strategy

pytestmark = pytest.mark.integration
MODE, SLEEVE = "testnet", "BTCUSDT:1m:sma_cross"
ROWS = sample_rows(400)
FIRST, SIDE = expected_sma_cross_orders([D(r[4]) for r in ROWS])[0]
OCO = ProtectionSettings(stop_loss=Distance(D(2), "%"), take_profit=Distance(D(4), "%"))
NO_TRIP = KillLimits(D("0.9"), D("0.9"))  # only the test trips the switch
STEP = D("0.00001")


def start_trader(database_url, fake, policy=KillPolicy(), protection=OCO) -> Trader:
    sleeve = Sleeve(name=SLEEVE, symbol="BTCUSDT", interval="1m", strategy=build_strategy("sma_cross"), allocation=D("1000"),
                    protection=protection)
    broker = BinanceBroker(binance_client(fake, signed=True), MODE, sleep=lambda s: None)
    trader = Trader(connector(database_url), [sleeve], broker, risk=RiskConfig(kill=NO_TRIP, kill_policy=policy), sleep=lambda s: None)
    with trader._transaction() as cur:
        account_records.seed_balance(cur, MODE, "USDT", D("10000"))
    return trader


def trip(db, state: str) -> None:
    with db.begin() as c:
        c.exec_driver_sql("INSERT INTO trading.trader_state (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE"
                          " SET value = EXCLUDED.value", (f"kill_switch:{MODE}", f'{{"state": "{state}", "by": "operator"}}'))


def ledger(db):
    with db.connect() as c:
        orders = c.execute(sa.text("SELECT client_order_id, side, type, status FROM trading.orders ORDER BY created_at, client_order_id")).fetchall()
        held = c.execute(sa.text("SELECT quantity FROM trading.positions WHERE mode = :m AND sleeve = :s"), {"m": MODE, "s": SLEEVE}).scalar()
        actions = c.execute(sa.text("SELECT rule, detail FROM trading.events WHERE kind = 'kill_switch_action' ORDER BY id")).fetchall()
    return {o.client_order_id[-3:] if o.client_order_id[-3:] in ("-PS", "-PT") else o.client_order_id[-2:]: o for o in orders}, held, actions


def sells_traded(fake) -> list[dict]:
    by_id = {o["orderId"]: o for o in fake.orders()}
    return [by_id[t["orderId"]] for t in fake.state.engine.trades if not t["isBuyer"]]


def cancels(fake) -> int:
    return len([r for r in fake.requests() if r[0] == "DELETE"])


@pytest.fixture
def fake(fake_binance):
    assert SIDE == "BUY"
    return fake_binance(price="60000.00", usdt="10000")


@pytest.fixture
def protected(db, database_url, fake):
    """Long at 60000 with its OCO working (stop 58800, take-profit 62400)."""
    seed_features(db, ROWS[: FIRST + 1])
    start_trader(database_url, fake).step()
    orders, held, _ = ledger(db)
    assert (orders["-B"].status, orders["-PS"].status, orders["-PT"].status) == ("FILLED", "NEW", "NEW") and held > 0
    return held


def test_reducing_cancels_the_protection_set_then_flattens_once(db, database_url, fake, protected):
    trip(db, "REDUCING")
    trader = start_trader(database_url, fake)
    trader.step()
    trader.step()

    orders, held, actions = ledger(db)
    (oco,) = fake.lists()
    assert (orders["-PS"].status, orders["-PT"].status) == ("CANCELED", "CANCELED")
    assert oco["listOrderStatus"] == "ALL_DONE" and [o["status"] for o in fake.orders() if o["type"] != "MARKET"] == ["CANCELED"] * 2
    assert cancels(fake) == 1  # the set cancelled as one (canceling a leg cancels the list)
    assert (orders["-F"].side, orders["-F"].type, orders["-F"].status) == ("SELL", "MARKET", "FILLED")
    assert [(o["clientOrderId"], o["type"]) for o in sells_traded(fake)] == [(orders["-F"].client_order_id, "MARKET")]  # one SELL
    assert 0 <= held < STEP
    assert [a.rule for a in actions] == ["cancel", "cancel", "flatten"]  # each step recorded, the set first
    assert "-PS (SELL" in actions[0].detail and actions[0].detail.endswith("now CANCELED")


def test_reducing_after_the_stop_filled_has_nothing_to_flatten(db, database_url, fake, protected):
    trip(db, "REDUCING")
    fake.trade("BTCUSDT", "59500.00", "58700.00")  # the stop fills before the trader acts on the switch
    trader = start_trader(database_url, fake)
    trader.step()
    trader.step()

    orders, held, actions = ledger(db)
    assert (orders["-PS"].status, orders["-PT"].status) == ("FILLED", "EXPIRED") and "-F" not in orders
    assert [o["clientOrderId"] for o in sells_traded(fake)] == [orders["-PS"].client_order_id]  # no second SELL
    assert cancels(fake) == 0 and 0 <= held < STEP
    assert [a.rule for a in actions] == ["cancel", "cancel"] and actions[0].detail.endswith("now FILLED")
    with db.connect() as c:
        triggered = c.execute(sa.text("SELECT count(*) FROM trading.events WHERE kind = 'protection_triggered'")).scalar()
    assert triggered == 1


def test_reducing_does_not_flatten_while_the_set_could_not_be_cancelled(db, database_url, fake, protected):
    trip(db, "REDUCING")
    fake.inject(Fault("DELETE", "/api/v3/order", 400, -2010, "Cancel refused."))
    start_trader(database_url, fake).step()

    orders, held, actions = ledger(db)
    assert (orders["-PS"].status, orders["-PT"].status) == ("NEW", "NEW") and "-F" not in orders
    assert held == protected and sells_traded(fake) == []  # the stop still protects; no SELL that could be the second
    assert actions == []
    with db.connect() as c:
        errors = c.execute(sa.text("SELECT error FROM trading.orders WHERE client_order_id ~ '-P[ST]$'")).scalars().all()
    assert all("cancel refused" in e for e in errors)


def test_halted_keeps_the_protection_by_default_and_its_stop_is_the_exit(db, database_url, fake, protected):
    trip(db, "HALTED")
    trader = start_trader(database_url, fake)
    trader.step()
    kept, held_kept, _ = ledger(db)
    fake.trade("BTCUSDT", "59500.00", "58700.00")  # the stop fires while HALTED
    trader.step()

    orders, held, actions = ledger(db)
    assert (kept["-PS"].status, kept["-PT"].status, held_kept) == ("NEW", "NEW", protected) and cancels(fake) == 0
    assert (orders["-PS"].status, orders["-PT"].status) == ("FILLED", "EXPIRED") and 0 <= held < STEP
    assert actions == [] and [o["clientOrderId"] for o in sells_traded(fake)] == [orders["-PS"].client_order_id]


def test_halted_places_the_set_of_an_unprotected_position_unless_cancel_all(db, database_url, fake):
    seed_features(db, ROWS[: FIRST + 1])
    start_trader(database_url, fake, protection=None).step()  # long, no protection configured yet
    trip(db, "HALTED")

    start_trader(database_url, fake, KillPolicy(on_halted="cancel_all")).step()
    under_cancel_all = (fake.lists(), ledger(db)[0])
    start_trader(database_url, fake).step()  # the default policy: a stop only reduces the position

    orders, _, actions = ledger(db)
    assert under_cancel_all[0] == [] and set(under_cancel_all[1]) == {"-B"}
    (oco,) = fake.lists()
    assert (orders["-PS"].status, orders["-PT"].status, oco["listOrderStatus"]) == ("NEW", "NEW", "EXECUTING") and actions == []


def test_halted_cancel_all_cancels_the_set_as_one_and_sells_nothing(db, database_url, fake, protected):
    trip(db, "HALTED")
    trader = start_trader(database_url, fake, KillPolicy(on_halted="cancel_all"))
    trader.step()
    trader.step()

    orders, held, actions = ledger(db)
    (oco,) = fake.lists()
    assert (orders["-PS"].status, orders["-PT"].status, oco["listOrderStatus"]) == ("CANCELED", "CANCELED", "ALL_DONE")
    assert cancels(fake) == 1 and held == protected and sells_traded(fake) == []  # nothing sold, nothing placed again
    assert [a.rule for a in actions] == ["cancel", "cancel"] and all(a.detail.startswith("HALTED: cancel") for a in actions)
