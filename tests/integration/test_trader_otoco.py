"""A LIMIT entry and its protection as ONE list (OTOCO, or OTO for a lone stop), on real PostgreSQL and the fake Binance
through python-binance: one request; the venue holds the legs until the entry fills and then works them, with the
trader dead or alive; a crash between recording and placing leaves exactly one list; an entry that ends unfilled takes
its legs with it; a symbol without otoAllowed falls back to the entry alone and the set after its fill, or is refused
at start when the sleeve requires the list."""

from decimal import Decimal as D

import pytest

from tests.helpers import expected_sma_cross_orders, sample_rows, seed_features
from tests.integration.test_trader_protection import OCO, SLEEVE, broker_on, events, held, ledger
from tests.integration.test_trader_protection_recovery import Crash, CrashingBroker
from tests.traders import connector
from trader import account_records
from trader.errors import ConfigError
from trader.loop import Trader
from trader.protection import Distance, ProtectionSettings
from trader.reconcile import reconcile
from trader.sleeve import RiskConfig, Sleeve
from trader.strategies import build_strategy

pytestmark = pytest.mark.integration
ROWS = sample_rows(400)
EXPECTED = expected_sma_cross_orders([D(r[4]) for r in ROWS])
LIMIT = D(ROWS[EXPECTED[0][0]][4])  # the entry's limit: the crossover candle's close (61526.21)
STOP, TAKE_PROFIT = D("60295.68"), D("63987.26")  # 2 % below the limit (rounded down), 4 % above (rounded up)


def limit_trader(database_url, broker, protection=OCO, tif="GTC", **risk):
    """A LIMIT-entry trader of one sleeve of sma_cross with ``protection``; ``risk``: more RiskConfig fields."""
    sleeve = Sleeve(name=SLEEVE, symbol="BTCUSDT", interval="1m", strategy=build_strategy("sma_cross"), allocation=D("1000"),
                    protection=protection)
    trader = Trader(connector(database_url), [sleeve], broker, risk=RiskConfig(order_type="LIMIT", limit_tif=tif, **risk),
                    sleep=lambda s: None)
    with trader._transaction() as cur:
        account_records.seed_balance(cur, "testnet", "USDT", D("10000"))
    return trader


def posts(fake, path):
    return [r for r in fake.requests(path) if r[0] == "POST"]


@pytest.fixture
def fake(db, fake_binance):
    seed_features(db, ROWS[: EXPECTED[0][0] + 1])  # up to the first crossover: one BUY
    return fake_binance(price="62000.00", usdt="10000")  # above the limit: the entry rests


def test_the_entry_and_its_oco_go_out_as_one_otoco_and_the_venue_exits_while_the_trader_is_dead(db, database_url, fake):
    limit_trader(database_url, broker_on(fake)).step()

    entry, stop, tp = ledger(db)
    assert (entry.side, entry.type, entry.status) == ("BUY", "LIMIT", "NEW")
    assert (stop.type, stop.status, stop.stop_price) == ("STOP_LOSS", "PENDING_NEW", STOP)
    assert (tp.type, tp.status, tp.stop_price) == ("TAKE_PROFIT", "PENDING_NEW", TAKE_PROFIT)
    assert entry.list_client_order_id == stop.list_client_order_id == tp.list_client_order_id == entry.client_order_id + "-PL"
    assert len(posts(fake, "/api/v3/orderList/otoco")) == 1 and posts(fake, "/api/v3/order") == []  # one request
    (otoco,) = fake.lists()
    assert otoco["listClientOrderId"] == entry.client_order_id + "-PL"
    assert held(database_url) == 0

    # the trader is dead: the entry fills, the venue puts the legs to work, the price falls through the stop
    fake.trade("BTCUSDT", "61500.00")
    assert {o["clientOrderId"]: o["status"] for o in fake.orders()} == {
        entry.client_order_id: "FILLED", stop.client_order_id: "NEW", tp.client_order_id: "NEW"}
    fake.trade("BTCUSDT", "61000.00", "60200.00")

    limit_trader(database_url, broker_on(fake)).step()  # restart
    entry, stop, tp = ledger(db)
    assert (entry.status, stop.status, tp.status, tp.expiry_reason) == ("FILLED", "FILLED", "EXPIRED", "OCO_TRIGGER")
    assert stop.executed_qty == D("0.01623")  # 0.01625 bought, less a commission in BTC, to the lot step
    assert 0 <= held(database_url) < D("0.00001")  # the stop's fill is the position's exit (what is left: dust)
    assert len(fake.lists()) == 1 and len(fake.orders()) == 3
    assert len(events(db, "protection_placed")) == 1 and len(events(db, "protection_triggered")) == 1


def test_the_legs_go_to_work_when_the_entry_fills_and_the_take_profit_exits(db, database_url, fake):
    trader = limit_trader(database_url, broker_on(fake))
    trader.step()
    fake.trade("BTCUSDT", "61526.21")
    trader.step()
    assert [o.status for o in ledger(db)] == ["FILLED", "NEW", "NEW"] and held(database_url) > 0
    assert [x["contingencyType"] for x in fake.lists()] == ["OTO"] and posts(fake, "/api/v3/orderList/oco") == []

    fake.trade("BTCUSDT", "64000.00")
    trader.step()

    entry, stop, tp = ledger(db)
    assert (stop.status, stop.expiry_reason, tp.status) == ("EXPIRED", "OCO_TRIGGER", "FILLED")
    assert 0 <= held(database_url) < D("0.00001") and len(fake.lists()) == 1


@pytest.mark.parametrize("when", ["before", "after"])
def test_killed_between_recording_and_placing_or_before_recording_the_answer_leaves_exactly_one_list(db, database_url, fake,
                                                                                                     when):
    with pytest.raises(Crash):
        limit_trader(database_url, CrashingBroker(broker_on(fake), when)).step()
    assert [o.status for o in ledger(db)] == ["PENDING_SUBMIT"] * 3  # entry and legs recorded together
    assert len(fake.lists()) == (1 if when == "after" else 0) and posts(fake, "/api/v3/order") == []

    restarted = limit_trader(database_url, broker_on(fake))
    reconcile(restarted._transaction, restarted.executor, ["BTCUSDT"], {"BTC", "USDT"}, accept=True,
              protector=restarted.protector)
    restarted.step()

    assert [o.status for o in ledger(db)] == ["NEW", "PENDING_NEW", "PENDING_NEW"]
    assert len(fake.lists()) == 1 and len(posts(fake, "/api/v3/orderList/otoco")) == 1
    assert posts(fake, "/api/v3/order") == []  # the entry never went out alone
    placed = events(db, "protection_placed")
    assert len(placed) == 1 and ("adopted" in placed[0]) == (when == "after")


def test_an_entry_that_expires_unfilled_takes_its_legs_with_it(db, database_url, fake):
    limit_trader(database_url, broker_on(fake), tif="IOC").step()

    entry, stop, tp = ledger(db)
    assert (entry.status, stop.status, tp.status) == ("EXPIRED", "EXPIRED", "EXPIRED")
    assert stop.expiry_reason == tp.expiry_reason == "OTO_PHASE_ONE_EXPIRED"
    assert held(database_url) == 0 and all(o["status"] == "EXPIRED" for o in fake.orders())


def test_a_lone_stop_goes_out_as_an_oto(db, database_url, fake):
    trailing = ProtectionSettings(trailing_stop=Distance(D(1), "%"))
    limit_trader(database_url, broker_on(fake), trailing).step()
    entry, stop = ledger(db)
    assert (entry.status, stop.status, stop.list_client_order_id) == ("NEW", "PENDING_NEW", entry.client_order_id + "-PL")
    assert len(posts(fake, "/api/v3/orderList/oto")) == 1 and posts(fake, "/api/v3/order") == []
    (placed,) = [o for o in fake.orders() if o["clientOrderId"] == stop.client_order_id]
    assert placed["trailingDelta"] in (100, "100")


def test_without_oto_allowed_the_entry_goes_alone_then_its_oco_or_the_start_is_refused_when_required(db, database_url, fake):
    fake.set_symbol("BTCUSDT", otoAllowed=False)
    required = ProtectionSettings(stop_loss=OCO.stop_loss, take_profit=OCO.take_profit, with_entry="require")
    with pytest.raises(ConfigError, match="with_entry: the symbol does not allow OTO lists"):
        limit_trader(database_url, broker_on(fake), required)

    trader = limit_trader(database_url, broker_on(fake))
    trader.step()
    (entry,) = ledger(db)
    assert (entry.type, entry.status, entry.list_client_order_id) == ("LIMIT", "NEW", None)
    assert len(posts(fake, "/api/v3/order")) == 1 and fake.lists() == []
    fake.trade("BTCUSDT", "61526.21")
    trader.step()
    entry, stop, tp = ledger(db)
    assert (entry.status, stop.status, tp.status) == ("FILLED", "NEW", "NEW")
    assert [x["contingencyType"] for x in fake.lists()] == ["OCO"]


def test_paper_holds_the_otoco_and_its_stop_fill_is_the_exit(db, database_url):
    import sqlalchemy as sa

    from tests.traders import BuyFirstSellLast, crash_rows, db_candles
    from trader.brokers.paper import PaperBroker

    rows = crash_rows(60)  # flat at 100 for 30 bars, then a steady fall
    seed_features(db, rows)
    connect = connector(database_url)
    sleeve = Sleeve(name="BTCUSDT:1m:buy_first_sell_late", symbol="BTCUSDT", interval="1m", strategy=BuyFirstSellLast(10.0),
                    allocation=D("1000"), protection=ProtectionSettings(stop_loss=Distance(D(2), "%")))
    Trader(connect, [sleeve], PaperBroker(db_candles(connect), fee_bps=D("0")), paper_balance=D("10000"),
           risk=RiskConfig(order_type="LIMIT")).step()

    with db.connect() as c:
        got = c.execute(sa.text("SELECT o.client_order_id, o.type, o.status, o.stop_price, o.list_client_order_id, f.price,"
                                " f.filled_at FROM trading.orders o LEFT JOIN trading.fills f USING (client_order_id)"
                                " ORDER BY o.signal_open_time, o.client_order_id")).fetchall()
    entry, stop = got[0], got[1]
    assert (entry.type, entry.status, entry.price, entry.list_client_order_id) == ("LIMIT", "FILLED", D("100.00"),
                                                                                    entry.client_order_id + "-PL")
    assert (stop.client_order_id, stop.status, stop.stop_price, stop.price) == (entry.client_order_id + "-PS", "FILLED",
                                                                                D("98.00"), D("98.00"))
    first_low_at_stop = next(int(r[0]) for r in rows if D(r[3]) <= D("98.00"))
    assert int(stop.filled_at.timestamp() * 1000) == first_low_at_stop
    assert "with its entry LIMIT BUY" in events(db, "protection_placed")[0]


def test_reconciliation_finds_nothing_to_differ_while_the_otoco_rests_and_after_the_entry_filled(db, database_url, fake):
    trader = limit_trader(database_url, broker_on(fake))
    trader.step()
    for price in (None, "61526.21"):  # the entry resting with its pending legs; then filled, the legs working
        if price:
            fake.trade("BTCUSDT", price)
            trader.step()
        diffs = reconcile(trader._transaction, trader.executor, ["BTCUSDT"], {"BTC", "USDT"}, accept=False,
                          protector=trader.protector)
        assert [d.line() for d in diffs] == []


def test_the_kill_switch_cancelling_the_resting_entry_ends_its_legs_in_the_ledger_too(db, database_url, fake):
    trader = limit_trader(database_url, broker_on(fake))
    trader.step()
    with trader._transaction() as cur:
        account_records.set_kill_state(cur, "testnet", "HALTED", "by hand", "operator")

    trader.step()  # HALTED cancels the entry at the venue (which cancels its list), then the legs follow in the ledger

    entry, stop, tp = ledger(db)
    assert (entry.status, stop.status, tp.status) == ("CANCELED", "CANCELED", "CANCELED")
    assert not [o for o in fake.orders() if o["status"] in ("NEW", "PENDING_NEW")] and held(database_url) == 0
