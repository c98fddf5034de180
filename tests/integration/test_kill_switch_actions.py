"""The kill switch acts (issue 16): REDUCING flattens every position with one MARKET exit per sleeve (or, configured
``exits_only``, only blocks entries); HALTED cancels the open orders at the venue (or keeps them). Each step is an
event and an order row in ``trading.*``. Paper broker and the Binance broker against the fake Binance, including a
trader killed in the middle of flattening: restarted, it exits once."""

from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.helpers import binance_client, expected_sma_cross_orders, sample_rows, seed_features
from tests.traders import BuyFirstSellLast, connector, crash_rows
from trader import account_records
from trader.brokers.binance import BinanceBroker
from trader.brokers.paper import PaperBroker
from trader.loop import Trader
from trader.risk.killswitch import KillLimits, KillPolicy
from trader.sleeve import RiskConfig, Sleeve
from trader.strategies import build_strategy
from trader.transaction import db_candles

pytestmark = pytest.mark.integration
ROWS = sample_rows(400)
EXPECTED = expected_sma_cross_orders([D(r[4]) for r in ROWS])
FIRST_BUY = next(i for i, side in EXPECTED if side == "BUY")
NO_TRIP = KillLimits(D("0.9"), D("0.9"))  # only the operator trips the switch here


class Crash(BaseException):
    """The process dies here: nothing after this line runs, uncommitted work is lost."""


class CrashAfterFlattenSubmit:
    """The real broker, except that the process dies right after the exchange accepted the flattening exit."""

    def __init__(self, inner) -> None:
        self.inner, self.mode = inner, inner.mode

    def submit(self, order):
        report = self.inner.submit(order)
        if order.client_order_id.endswith("-F"):
            raise Crash
        return report

    def __getattr__(self, name):
        return getattr(self.inner, name)


def trip(engine_or_cur, mode, state):
    with engine_or_cur.begin() as c:
        c.exec_driver_sql("INSERT INTO trading.trader_state (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE"
                          " SET value = EXCLUDED.value", (f"kill_switch:{mode}", f'{{"state": "{state}", "by": "operator"}}'))


def paper_trader(database_url, policy=KillPolicy(), **risk):
    connect = connector(database_url)
    sleeve = Sleeve(name="BTCUSDT:1m:buy_first_sell_late", symbol="BTCUSDT", interval="1m",
                    strategy=BuyFirstSellLast(sell_below=0), allocation=D("1000"))
    return Trader(connect, [sleeve], PaperBroker(db_candles(connect), fee_bps=D("0")),
                  risk=RiskConfig(kill=NO_TRIP, kill_policy=policy, **risk), paper_balance=D("10000"))


def binance_trader(database_url, broker, policy=KillPolicy(), **risk):
    sleeve = Sleeve(name="BTCUSDT:1m:sma_cross", symbol="BTCUSDT", interval="1m", strategy=build_strategy("sma_cross"),
                    allocation=D("1000"))
    trader = Trader(connector(database_url), [sleeve], broker, risk=RiskConfig(kill=NO_TRIP, kill_policy=policy, **risk),
                    sleep=lambda s: None)
    with trader._transaction() as cur:
        account_records.seed_balance(cur, "testnet", "USDT", D("10000"))
    return trader


def binance_broker(fake):
    return BinanceBroker(binance_client(fake, signed=True), "testnet", sleep=lambda s: None)


def ledger(engine, mode):
    with engine.connect() as c:
        orders = c.execute(sa.text("SELECT client_order_id, side, type, status, executed_qty FROM trading.orders WHERE mode = :m"
                                   " ORDER BY created_at, client_order_id"), {"m": mode}).fetchall()
        held = c.execute(sa.text("SELECT sum(quantity) FROM trading.positions WHERE mode = :m"), {"m": mode}).scalar()
        actions = c.execute(sa.text("SELECT rule, detail FROM trading.events WHERE mode = :m AND kind = 'kill_switch_action'"
                                    " ORDER BY id"), {"m": mode}).fetchall()
    return orders, held, actions


def test_paper_reducing_flattens_the_position_once_at_the_next_open(db, database_url):
    rows = crash_rows()
    seed_features(db, rows[:40])
    paper_trader(database_url).step()  # long
    trip(db, "paper", "REDUCING")

    paper_trader(database_url).step()  # the flatten is recorded; it fills at the next candle's open
    recorded, _, _ = ledger(db, "paper")
    seed_features(db, rows[40:43])
    restarted = paper_trader(database_url)
    restarted.step()
    restarted.step()

    orders, held, actions = ledger(db, "paper")
    assert [(o.side, o.status) for o in recorded] == [("BUY", "FILLED"), ("SELL", "NEW")]
    assert [(o.side, o.type, o.status) for o in orders] == [("BUY", "MARKET", "FILLED"), ("SELL", "MARKET", "FILLED")]
    assert orders[1].client_order_id.endswith("-F") and orders[1].executed_qty == orders[0].executed_qty
    assert held == 0
    assert [a.rule for a in actions] == ["flatten"] and orders[1].client_order_id in actions[0].detail


def test_paper_reducing_exits_only_blocks_entries_and_keeps_the_position(db, database_url):
    rows = crash_rows()
    seed_features(db, rows[:40])
    paper_trader(database_url, KillPolicy(on_reducing="exits_only")).step()
    trip(db, "paper", "REDUCING")
    seed_features(db, rows[40:43])
    paper_trader(database_url, KillPolicy(on_reducing="exits_only")).step()

    orders, held, actions = ledger(db, "paper")
    assert [o.side for o in orders] == ["BUY"] and held == orders[0].executed_qty and actions == []


LIMIT = dict(order_type="LIMIT", limit_tif="GTC", limit_offset_bps=D("5000"))  # a BUY 50 % below the close: it rests


def test_paper_halted_cancels_a_resting_order_or_keeps_it(db, database_url):
    seed_features(db, crash_rows()[:40])
    paper_trader(database_url, **LIMIT).step()
    trip(db, "paper", "HALTED")

    paper_trader(database_url, KillPolicy(on_halted="keep"), **LIMIT).step()
    kept, _, _ = ledger(db, "paper")
    paper_trader(database_url, **LIMIT).step()

    orders, held, actions = ledger(db, "paper")
    assert [(o.side, o.status) for o in kept] == [("BUY", "NEW")]
    assert [(o.side, o.type, o.status) for o in orders] == [("BUY", "LIMIT", "CANCELED")] and held == 0
    assert [a.rule for a in actions] == ["cancel"] and "was NEW): now CANCELED" in actions[0].detail


@pytest.fixture
def fake(fake_binance):
    return fake_binance(price=ROWS[FIRST_BUY][4], usdt="10000")


def test_binance_reducing_flattens_on_the_exchange(db, database_url, fake):
    seed_features(db, ROWS[: FIRST_BUY + 2])
    binance_trader(database_url, binance_broker(fake)).step()  # long on the exchange
    trip(db, "testnet", "REDUCING")
    binance_trader(database_url, binance_broker(fake)).step()

    orders, held, actions = ledger(db, "testnet")
    on_exchange = [(o["side"], o["type"], o["status"], o["clientOrderId"]) for o in fake.orders()]
    assert [(o.side, o.status) for o in orders] == [("BUY", "FILLED"), ("SELL", "FILLED")]
    assert on_exchange == [("BUY", "MARKET", "FILLED", orders[0].client_order_id),
                           ("SELL", "MARKET", "FILLED", orders[1].client_order_id)]
    assert orders[1].client_order_id.endswith("-F")
    assert D(0) <= held < D("0.00001")  # what commission left is dust below the lot step
    assert [a.rule for a in actions] == ["flatten"]


def test_killed_in_the_middle_of_flattening_the_restart_exits_once(db, database_url, fake):
    seed_features(db, ROWS[: FIRST_BUY + 2])
    binance_trader(database_url, binance_broker(fake)).step()
    trip(db, "testnet", "REDUCING")

    with pytest.raises(Crash):  # the exchange filled the exit; the ledger never heard
        binance_trader(database_url, CrashAfterFlattenSubmit(binance_broker(fake))).step()
    after_crash, _, _ = ledger(db, "testnet")
    binance_trader(database_url, binance_broker(fake)).step()  # restart
    binance_trader(database_url, binance_broker(fake)).step()  # and again

    orders, held, actions = ledger(db, "testnet")
    sells = [o for o in fake.orders() if o["side"] == "SELL"]
    assert [(o.side, o.status) for o in after_crash] == [("BUY", "FILLED"), ("SELL", "PENDING_SUBMIT")]
    assert len(sells) == 1 and sells[0]["clientOrderId"] == orders[1].client_order_id == after_crash[1].client_order_id
    assert [(o.side, o.status) for o in orders] == [("BUY", "FILLED"), ("SELL", "FILLED")]
    with db.connect() as c:
        fills = c.execute(sa.text("SELECT count(*) FROM trading.fills WHERE client_order_id = :c"),
                          {"c": orders[1].client_order_id}).scalar()
    assert fills == 1 and D(0) <= held < D("0.00001") and len(actions) == 1


def test_binance_halted_cancels_the_resting_order_at_the_exchange(db, database_url, fake):
    i, side = EXPECTED[0]
    seed_features(db, ROWS[: i + 1])
    fake.set_price("BTCUSDT", "100000.00")  # far above the limit: the BUY rests on the book
    risk = dict(order_type="LIMIT", limit_tif="GTC", limit_offset_bps=D("50"))
    binance_trader(database_url, binance_broker(fake), **risk).step()
    trip(db, "testnet", "HALTED")
    binance_trader(database_url, binance_broker(fake), **risk).step()

    orders, _, actions = ledger(db, "testnet")
    assert [(o.side, o.status) for o in orders] == [(side, "CANCELED")]
    assert [(o["clientOrderId"], o["status"]) for o in fake.orders()] == [(orders[0].client_order_id, "CANCELED")]
    assert [a.rule for a in actions] == ["cancel"]
    assert fake.state.engine.free("USDT") == D("10000")  # the reserved quote is free again


def test_a_flatten_the_symbol_status_forbids_is_refused_once_with_the_reason(db, database_url, fake):
    seed_features(db, ROWS[: FIRST_BUY + 2])
    binance_trader(database_url, binance_broker(fake)).step()
    trip(db, "testnet", "REDUCING")
    fake.state.market.symbols["BTCUSDT"].status = "CANCEL_ONLY"
    trader = binance_trader(database_url, binance_broker(fake))
    trader.step()
    trader.step()

    orders, held, actions = ledger(db, "testnet")
    assert [o.side for o in orders] == ["BUY"] and held > 0 and [o["side"] for o in fake.orders()] == ["BUY"]
    assert [a.rule for a in actions] == ["flatten_refused"] and "status CANCEL_ONLY" in actions[0].detail


def test_halted_never_sends_a_recorded_order_and_cancels_it_in_the_ledger(db, database_url, fake):
    from trader import order_records
    from trader.orders import OrderIntent

    trader = binance_trader(database_url, binance_broker(fake), KillPolicy(on_halted="keep"))
    intent = OrderIntent(sleeve="BTCUSDT:1m:sma_cross", symbol="BTCUSDT", side="BUY", quantity=D("0.001"),
                         open_time_ms=1_700_000_000_000, interval="1m", mode="testnet")
    with trader._transaction() as cur:
        order_records.insert_order(cur, intent, "testnet", D("60000"))
    trip(db, "testnet", "HALTED")

    binance_trader(database_url, binance_broker(fake), KillPolicy(on_halted="keep")).step()
    kept, _, _ = ledger(db, "testnet")
    binance_trader(database_url, binance_broker(fake)).step()

    orders, _, actions = ledger(db, "testnet")
    assert [o.status for o in kept] == ["PENDING_SUBMIT"] and fake.orders() == []
    assert [o.status for o in orders] == ["CANCELED"] and fake.orders() == []
    assert "was PENDING_SUBMIT): now CANCELED" in actions[0].detail


def test_paper_reducing_cancels_a_resting_entry(db, database_url):
    seed_features(db, crash_rows()[:40])
    paper_trader(database_url, **LIMIT).step()
    trip(db, "paper", "REDUCING")
    paper_trader(database_url, **LIMIT).step()

    orders, held, actions = ledger(db, "paper")
    assert [(o.side, o.status) for o in orders] == [("BUY", "CANCELED")] and held == 0
    assert [a.rule for a in actions] == ["cancel"] and actions[0].detail.startswith("REDUCING: cancel")
