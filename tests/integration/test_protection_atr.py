"""ATR-multiple stops end to end (sleeves file ``stop_loss = "2atr"``), on real PostgreSQL: on the fake Binance and on
paper the stop is the entry's fill price less 2 x ``atr_14`` of the entry's decision bar (``market.features``, not a
later bar), exact in Decimal and rounded down to the tick; the take-profit (``3atr``) up."""

from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.helpers import expected_sma_cross_orders, sample_rows, seed_features
from tests.integration.test_trader_protection import broker_on, ledger, start_trader
from tests.traders import connector
from trader.brokers.paper import PaperBroker
from trader.loop import Trader
from trader.sleeve import Sleeve
from trader.sleeves_file import parse_sleeves
from trader.strategies import build_strategy
from trader.transaction import db_candles

pytestmark = pytest.mark.integration
ROWS = sample_rows(400)
EXPECTED = expected_sma_cross_orders([D(r[4]) for r in ROWS])
SLEEVES = """[[sleeve]]
symbol = "BTCUSDT"
interval = "1m"
strategy = "sma_cross"
stop_loss = "2atr"
take_profit = "3atr"
"""
TICK = D("0.01")


@pytest.fixture
def atr_protection():
    (spec,) = parse_sleeves(SLEEVES)
    return spec.protection


def seed_past_the_entry(db):
    i, side = EXPECTED[0]
    assert side == "BUY" and EXPECTED[1][0] > i + 6
    seed_features(db, ROWS[: i + 6])  # the entry's bar and five more (no exit yet): the entry bar's atr_14 is not the newest
    with db.connect() as c:
        atr = dict(c.execute(sa.text("SELECT open_time, atr_14 FROM market.features ORDER BY open_time")).fetchall())
    times = sorted(atr)
    entry_bar, newest = times[i], times[-1]
    assert atr[entry_bar] != atr[newest]
    return D(str(atr[entry_bar]))


def expected(fill: D, atr: D) -> tuple[D, D]:
    return ((fill - 2 * atr) / TICK).to_integral_value(ROUND_FLOOR) * TICK, ((fill + 3 * atr) / TICK).to_integral_value(ROUND_CEILING) * TICK


def test_an_atr_stop_on_the_fake_is_priced_from_the_entry_bars_atr(db, database_url, fake_binance, atr_protection):
    atr = seed_past_the_entry(db)
    fake = fake_binance(price="60000.00", usdt="10000")

    start_trader(database_url, broker_on(fake), atr_protection).step()

    entry, stop, tp = ledger(db)
    assert entry.status == "FILLED" and (stop.type, tp.type) == ("STOP_LOSS", "TAKE_PROFIT")
    assert (stop.stop_price, tp.stop_price) == expected(D("60000.00"), atr)
    placed = {o["clientOrderId"]: o for o in fake.orders()}
    assert D(placed[stop.client_order_id]["stop"]) == stop.stop_price  # as the venue holds it


def test_an_atr_stop_on_paper_is_priced_from_the_fill_and_the_entry_bars_atr(db, database_url, atr_protection):
    atr = seed_past_the_entry(db)
    connect = connector(database_url)
    sleeve = Sleeve(name="BTCUSDT:1m:sma_cross", symbol="BTCUSDT", interval="1m", strategy=build_strategy("sma_cross"),
                    allocation=D("1000"), protection=atr_protection)
    Trader(connect, [sleeve], PaperBroker(db_candles(connect), fee_bps=D("0")), paper_balance=D("10000")).step()

    with db.connect() as c:
        rows = c.execute(sa.text("SELECT client_order_id, price, stop_price FROM trading.orders ORDER BY client_order_id")).fetchall()
    entry, stop, tp = rows  # ...-B, ...-B-PS, ...-B-PT
    fill = D(ROWS[EXPECTED[0][0] + 1][1])  # the next candle's open
    assert entry.price == fill
    assert (stop.stop_price, tp.stop_price) == expected(fill, atr)
