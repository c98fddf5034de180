"""Hop 3: market.features -> trader -> trading.* (paper), against real PostgreSQL."""

from decimal import Decimal

import psycopg2
import pytest
import sqlalchemy as sa

from klinepipe.candle_store import stage_and_merge
from klinepipe.feature_store import compute_pending_features
from klinepipe.kline import parse_kline_event
from tests.helpers import closed_events, expected_sma_cross_orders, sample_rows
from trader.brokers.paper import PaperBroker
from trader.loop import Sleeve, Trader
from trader.strategies import build_strategy

pytestmark = pytest.mark.integration
SLEEVE = "BTCUSDT:1m:sma_cross"


def make_trader(database_url):
    dsn = sa.engine.make_url(database_url).render_as_string(hide_password=False).replace("+psycopg2", "")
    sleeve = Sleeve(SLEEVE, "BTCUSDT", "1m", build_strategy("sma_cross", fast=10, slow=30))
    return Trader(lambda: psycopg2.connect(dsn), [sleeve], PaperBroker(fee_bps=Decimal("10")),
                  order_quote=Decimal("1000"), qty_step=Decimal("0.00001"), paper_balance=Decimal("10000"))


def seed_features(engine, rows):
    raw = engine.raw_connection()
    with raw.cursor() as cur:
        stage_and_merge(cur, [(parse_kline_event(e), "replay") for e in closed_events(rows)])
    raw.commit()
    raw.close()
    compute_pending_features(engine)


def orders(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT o.signal_open_time, o.side, o.quantity, o.status, f.price, f.fee"
                                 " FROM trading.orders o JOIN trading.fills f USING (client_order_id)"
                                 " ORDER BY o.signal_open_time")).fetchall()


def test_orders_are_the_crossovers_and_a_restart_orders_nothing_twice(engine, database_url):
    rows = sample_rows(600)
    seed_features(engine, rows)

    make_trader(database_url).step()
    make_trader(database_url).step()  # a restarted trader sees nothing new

    expected = expected_sma_cross_orders([Decimal(r[4]) for r in rows])
    got = orders(engine)
    assert len(expected) >= 4
    assert [(int(o.signal_open_time.timestamp() * 1000), o.side) for o in got] == [(int(rows[i][0]), s) for i, s in expected]
    assert all(o.status == "FILLED" and o.price == Decimal(rows[i][4]) for o, (i, _) in zip(got, expected))
    with engine.connect() as c:
        signals = c.execute(sa.text("SELECT count(*) FROM trading.signals")).scalar()
        (qty,) = c.execute(sa.text("SELECT quantity FROM trading.positions WHERE sleeve = :s"), {"s": SLEEVE}).one()
    assert signals == 600
    assert qty == (got[-1].quantity if got[-1].side == "BUY" else 0)


def test_balances_move_by_exact_notional_and_fee(engine, database_url):
    rows = sample_rows(600)
    seed_features(engine, rows)

    make_trader(database_url).step()

    got = orders(engine)
    cash = Decimal("10000")
    for o in got:
        notional = o.quantity * o.price
        cash += (-notional if o.side == "BUY" else notional) - o.fee
    with engine.connect() as c:
        usdt = c.execute(sa.text("SELECT free FROM trading.balances WHERE mode = 'paper' AND asset = 'USDT'")).scalar()
    assert usdt == cash


def test_new_features_are_decided_incrementally(engine, database_url):
    rows = sample_rows(600)
    trader = make_trader(database_url)
    seed_features(engine, rows[:300])
    trader.step()
    seed_features(engine, rows[300:])

    trader.step()

    expected = expected_sma_cross_orders([Decimal(r[4]) for r in rows])
    assert [o.side for o in orders(engine)] == [s for _, s in expected]
