"""Protection held by the exchange, on real PostgreSQL and the fake Binance through python-binance: an entry fill gets
exactly one protection set (an OCO of take-profit + stop, or a lone stop / trailing stop, as the symbol allows), a
stop fill is the position's exit in the ledger, an exit by signal cancels the set first, and a configuration the
symbol cannot honour is refused at start."""

from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.helpers import binance_client, expected_sma_cross_orders, sample_rows, seed_features
from tests.traders import connector
from trader import account_records, sleeve_records
from trader.brokers.binance import BinanceBroker
from trader.errors import ConfigError
from trader.loop import Trader
from trader.protection import Distance, ProtectionSettings
from trader.sleeve import Sleeve
from trader.strategies import build_strategy
from trader.transaction import Transaction

pytestmark = pytest.mark.integration
SLEEVE = "BTCUSDT:1m:sma_cross"
ROWS = sample_rows(400)
EXPECTED = expected_sma_cross_orders([D(r[4]) for r in ROWS])
OCO = ProtectionSettings(stop_loss=Distance(D(2), "%"), take_profit=Distance(D(4), "%"))


def start_trader(database_url, broker, protection=OCO, strategy=None):
    sleeve = Sleeve(name=SLEEVE, symbol="BTCUSDT", interval="1m", strategy=strategy or build_strategy("sma_cross"),
                    allocation=D("1000"), protection=protection)
    trader = Trader(connector(database_url), [sleeve], broker, sleep=lambda s: None)
    with trader._transaction() as cur:
        account_records.seed_balance(cur, "testnet", "USDT", D("10000"))
    return trader


def broker_on(fake):
    return BinanceBroker(binance_client(fake, signed=True), "testnet", sleep=lambda s: None)


def ledger(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT client_order_id, side, type, status, stop_price, executed_qty, expiry_reason,"
                                 " list_client_order_id FROM trading.orders ORDER BY signal_open_time, client_order_id")).fetchall()


def events(engine, kind):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT detail FROM trading.events WHERE kind = :k ORDER BY id"), {"k": kind}).scalars().all()


def held(database_url):
    with Transaction(connector(database_url)()) as cur:
        return sleeve_records.position(cur, "testnet", SLEEVE)


@pytest.fixture
def first_entry(db):
    i, side = EXPECTED[0]
    assert side == "BUY"
    seed_features(db, ROWS[: i + 1])  # up to the first crossover: one BUY


def test_an_entry_fill_gets_one_oco_and_its_stop_fill_is_the_exit(db, database_url, fake_binance, first_entry):
    fake = fake_binance(price="60000.00", usdt="10000")
    trader = start_trader(database_url, broker_on(fake))

    trader.step()  # BUY fills at 60000, the OCO goes out right after
    entry, stop, tp = ledger(db)
    assert (entry.side, entry.status) == ("BUY", "FILLED")
    assert (stop.type, stop.status, stop.stop_price) == ("STOP_LOSS", "NEW", D("58800.00"))
    assert (tp.type, tp.status, tp.stop_price) == ("TAKE_PROFIT", "NEW", D("62400.00"))
    assert stop.client_order_id == entry.client_order_id + "-PS" and tp.client_order_id == entry.client_order_id + "-PT"
    (oco,) = fake.lists()
    assert oco["listClientOrderId"] == entry.client_order_id + "-PL" == stop.list_client_order_id

    fake.trade("BTCUSDT", "59500.00", "58700.00")  # the price falls through the stop
    trader.step()
    trader.step()

    entry, stop, tp = ledger(db)
    bought = entry.executed_qty * D("0.999")  # commission paid in BTC
    assert (stop.status, stop.executed_qty) == ("FILLED", bought.quantize(D("0.00001"), rounding="ROUND_DOWN"))
    assert (tp.status, tp.expiry_reason) == ("EXPIRED", "OCO_TRIGGER")
    assert 0 <= held(database_url) < D("0.00001")  # the stop's fill is the position's exit (what is left: dust)
    assert len(fake.lists()) == 1 and len(fake.orders()) == 3  # no second set
    assert len(events(db, "protection_placed")) == 1 and len(events(db, "protection_triggered")) == 1
    with db.connect() as c:
        fills = c.execute(sa.text("SELECT client_order_id FROM trading.fills ORDER BY id")).scalars().all()
    assert fills == [entry.client_order_id, stop.client_order_id]


def test_an_exit_by_signal_cancels_the_set_before_it_sells(db, database_url, fake_binance, first_entry):
    fake = fake_binance(price="60000.00", usdt="10000")
    trader = start_trader(database_url, broker_on(fake))
    trader.step()
    i_exit, side = EXPECTED[1]
    assert side == "SELL"
    seed_features(db, ROWS[: i_exit + 1])  # the crossover down (price still between stop and take-profit)

    trader.step()

    entry, stop, tp, exit_ = ledger(db)
    assert (stop.status, tp.status) == ("CANCELED", "CANCELED")
    assert (exit_.side, exit_.type, exit_.status) == ("SELL", "MARKET", "FILLED")
    assert 0 <= held(database_url) < D("0.00001") and len(fake.lists()) == 1
    assert all(o["status"] != "NEW" for o in fake.orders())


def test_a_lone_stop_when_the_symbol_allows_no_oco_and_a_refusal_when_it_cannot_stop_at_all(db, database_url, fake_binance,
                                                                                           first_entry):
    fake = fake_binance(price="60000.00", usdt="10000")
    fake.set_symbol("BTCUSDT", ocoAllowed=False)
    with pytest.raises(ConfigError, match="take_profit: the symbol does not allow OCO lists"):
        start_trader(database_url, broker_on(fake))

    trailing = ProtectionSettings(trailing_stop=Distance(D(1), "%"))
    start_trader(database_url, broker_on(fake), trailing).step()
    entry, stop = ledger(db)
    assert (stop.type, stop.status, stop.stop_price) == ("STOP_LOSS", "NEW", None)
    (placed,) = [o for o in fake.orders() if o["clientOrderId"] == stop.client_order_id]
    assert placed["trailingDelta"] in (100, "100") and fake.lists() == []

    fake.set_symbol("BTCUSDT", allowTrailingStop=False)
    with pytest.raises(ConfigError, match="trailing_stop: the symbol does not allow trailing stops"):
        start_trader(database_url, broker_on(fake), trailing)


def test_paper_holds_the_set_and_its_stop_fill_is_the_exit_at_the_stop_price(db, database_url):
    from tests.traders import BuyFirstSellLast, crash_rows, protected_paper_trader

    rows = crash_rows(60)  # flat at 100 for 30 bars, then a steady fall
    seed_features(db, rows)
    stop_only = ProtectionSettings(stop_loss=Distance(D(2), "%"))
    trader = protected_paper_trader(database_url, BuyFirstSellLast(sell_below=10.0), stop_only)

    trader.step()

    with db.connect() as c:
        got = c.execute(sa.text("SELECT o.client_order_id, o.side, o.type, o.status, o.stop_price, f.price, f.filled_at"
                                " FROM trading.orders o LEFT JOIN trading.fills f USING (client_order_id)"
                                " ORDER BY o.signal_open_time, o.client_order_id")).fetchall()
    entry, stop = got[0], got[1]
    assert (entry.side, entry.status, entry.price) == ("BUY", "FILLED", D("100.00"))
    assert (stop.client_order_id, stop.type, stop.status, stop.stop_price) == (entry.client_order_id + "-PS", "STOP_LOSS",
                                                                                "FILLED", D("98.00"))
    first_low_at_stop = next(int(r[0]) for r in rows if D(r[3]) <= D("98.00"))
    assert stop.price == D("98.00") and int(stop.filled_at.timestamp() * 1000) == first_low_at_stop
    assert len(events(db, "protection_triggered")) >= 1
