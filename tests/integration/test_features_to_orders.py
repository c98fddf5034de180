"""Hop 3: market.features -> trader -> trading.* (paper), against real PostgreSQL.

Fill model (shared with backtests): the decision on candle i's close is filled at candle i+1's open.
"""

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.helpers import expected_sma_cross_orders, sample_rows, seed_features
from tests.traders import SLEEVE, make_trader
from trader import market_reads, sleeve_records, timestamps

pytestmark = pytest.mark.integration


def orders(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT o.signal_open_time, o.side, o.quantity, o.status, f.price, f.fee"
                                 " FROM trading.orders o LEFT JOIN trading.fills f USING (client_order_id)"
                                 " ORDER BY o.signal_open_time")).fetchall()


def test_orders_are_the_crossovers_filled_at_the_next_open_and_a_restart_orders_nothing_twice(db, database_url):
    rows = sample_rows(600)
    seed_features(db, rows)

    make_trader(database_url).step()
    make_trader(database_url).step()  # a restarted trader sees nothing new

    expected = expected_sma_cross_orders([Decimal(r[4]) for r in rows])
    got = orders(db)
    assert len(expected) >= 4
    assert [(int(o.signal_open_time.timestamp() * 1000), o.side) for o in got] == [(int(rows[i][0]), s) for i, s in expected]
    assert all(o.status == "FILLED" and o.price == Decimal(rows[i + 1][1]) for o, (i, _) in zip(got, expected))
    with db.connect() as c:
        signals = c.execute(sa.text("SELECT count(*) FROM trading.signals")).scalar()
        (qty,) = c.execute(sa.text("SELECT quantity FROM trading.positions WHERE sleeve = :s"), {"s": SLEEVE}).one()
    assert signals == 600
    assert qty == (got[-1].quantity if got[-1].side == "BUY" else 0)


def test_an_order_on_the_newest_candle_waits_for_the_next_open(db, database_url):
    rows = sample_rows(600)
    i, side = expected_sma_cross_orders([Decimal(r[4]) for r in rows])[0]
    seed_features(db, rows[: i + 1])
    trader = make_trader(database_url)

    trader.step()
    pending = orders(db)
    seed_features(db, rows[i + 1: i + 2])
    trader.step()

    assert [(o.side, o.status, o.price) for o in pending] == [(side, "NEW", None)]
    assert [(o.side, o.status, o.price) for o in orders(db)] == [(side, "FILLED", Decimal(rows[i + 1][1]))]


def test_balances_move_by_exact_notional_and_fee(db, database_url):
    rows = sample_rows(600)
    seed_features(db, rows)

    make_trader(database_url).step()

    got = orders(db)
    cash = Decimal("10000")
    for o in got:
        notional = o.quantity * o.price
        cash += (-notional if o.side == "BUY" else notional) - o.fee
        assert o.fee == o.quantity * o.price * Decimal("0.001")
    with db.connect() as c:
        usdt = c.execute(sa.text("SELECT free FROM trading.balances WHERE mode = 'paper' AND asset = 'USDT'")).scalar()
    assert usdt == cash


def test_new_features_are_decided_incrementally(db, database_url):
    rows = sample_rows(600)
    trader = make_trader(database_url)
    seed_features(db, rows[:300])
    trader.step()
    seed_features(db, rows[300:])

    trader.step()

    expected = expected_sma_cross_orders([Decimal(r[4]) for r in rows])
    assert [o.side for o in orders(db)] == [s for _, s in expected]


def test_paper_fills_only_see_candles_the_sleeve_has_reached(db, database_url):
    rows = sample_rows(50)
    seed_features(db, rows)
    trader = make_trader(database_url)
    t = [int(r[0]) for r in rows]
    with trader._transaction() as cur:
        sleeve_records.advance_sleeve(cur, "paper", SLEEVE, timestamps.from_ms(t[20]))

        reached = market_reads.candles_after(cur, "BTCUSDT", "1m", t[10], 1000, SLEEVE, "paper")
        everything = market_reads.candles_after(cur, "BTCUSDT", "1m", t[10], 1000)

    assert [c.open_time_ms for c in reached] == t[11:22]  # up to the candle after the newest decided one
    assert len(everything) == 39


def test_the_console_shows_the_fill_price_not_the_signal_close(db, database_url):
    """issue 13.9: the line printed per order named the signal close as if it were the price traded at."""
    rows = sample_rows(600)
    i, side = expected_sma_cross_orders([Decimal(r[4]) for r in rows])[0]
    assert Decimal(rows[i][4]) != Decimal(rows[i + 1][1])  # the close decided on and the next open differ here
    seed_features(db, rows[: i + 1])
    trader = make_trader(database_url)

    ordered = [x.line() for x in trader.step()]
    seed_features(db, rows[i + 1: i + 2])
    filled = [x.line() for x in trader.step()]

    (order_line,) = ordered
    assert f" {side} " in order_line and f"ordered (MARKET, signal close {Decimal(rows[i][4])})" in order_line
    assert " @ " not in order_line
    (fill_line,) = filled
    (fill,) = [o for o in orders(db)]
    assert f"{SLEEVE} {side} {fill.quantity} filled @ {Decimal(rows[i + 1][1])} (fee " in fill_line
    assert fill.price == Decimal(rows[i + 1][1])


def test_catching_up_prints_each_order_then_its_fill(db, database_url):
    rows = sample_rows(600)
    seed_features(db, rows)

    lines = [x.line() for x in make_trader(database_url).step()]

    expected = expected_sma_cross_orders([Decimal(r[4]) for r in rows])
    assert len(lines) == 2 * len(expected)
    for (i, side), ordered, filled in zip(expected, lines[0::2], lines[1::2]):
        assert f" {side} " in ordered and "ordered" in ordered
        assert f" {side} " in filled and f"filled @ {Decimal(rows[i + 1][1])} " in filled
