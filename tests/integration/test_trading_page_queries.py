"""The Trading page's queries on real PostgreSQL: freshness per series, trades per mode, positions valued at the
newest close, the kill switch per mode, the equity curve and its P&L, and the mode the trader ran last."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from klinepipe_trading import queries

pytestmark = pytest.mark.integration
T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def _seed(engine) -> None:
    with engine.begin() as c:
        c.execute(sa.text("""INSERT INTO market.candles (symbol, interval, open_time, close_time, open, high, low, close, volume,
                             is_closed, event_time, source, ingested_at)
                             VALUES ('ETHUSDT', '1m', :t, :ct, 10, 12, 9, :c, 1, :closed, :ct, 'replay', now() - interval '30 seconds')"""),
                  [{"t": T0 + timedelta(minutes=i), "ct": T0 + timedelta(minutes=i, seconds=59.999), "c": 10 + i, "closed": i < 4}
                   for i in range(5)])
        c.execute(sa.text("INSERT INTO trading.sleeves (mode, sleeve, symbol, interval, strategy) VALUES"
                          " ('paper', 'ETHUSDT:1m:sma_cross', 'ETHUSDT', '1m', 'sma_cross'),"
                          " ('testnet', 'ETHUSDT:1m:sma_cross', 'ETHUSDT', '1m', 'sma_cross')"))  # sleeves are per mode
        c.execute(sa.text("INSERT INTO trading.positions (sleeve, symbol, quantity, avg_price) VALUES ('ETHUSDT:1m:sma_cross', 'ETHUSDT', 2, 11)"))
        for n, mode in enumerate(("paper", "testnet")):
            c.execute(sa.text("""INSERT INTO trading.orders (client_order_id, sleeve, mode, symbol, side, type, quantity, status,
                                 signal_open_time, created_at) VALUES (:id, 'ETHUSDT:1m:sma_cross', :m, 'ETHUSDT', 'BUY', 'MARKET', 2,
                                 'FILLED', :t, :t)"""), {"id": f"o{n}", "m": mode, "t": T0 + timedelta(minutes=n)})
            c.execute(sa.text("""INSERT INTO trading.fills (client_order_id, trade_id, symbol, side, quantity, price, fee, fee_asset, filled_at)
                                 VALUES (:id, '1', 'ETHUSDT', 'BUY', 2, 11, 0, 'USDT', :t)"""), {"id": f"o{n}", "t": T0 + timedelta(minutes=n + 1)})
        c.execute(sa.text("INSERT INTO trading.equity (mode, at, equity) VALUES ('testnet', :a, 1000), ('testnet', :b, 1100)"),
                  {"a": T0, "b": T0 + timedelta(minutes=3)})
        c.execute(sa.text("INSERT INTO trading.trader_state (key, value) VALUES ('kill_switch:testnet', :v)"),
                  {"v": json.dumps({"state": "HALTED", "reason": "drawdown", "by": "risk"})})


def test_the_page_data_comes_from_the_ledger_and_the_candles(engine):
    _seed(engine)

    with engine.connect() as conn:
        series = queries.list_series(conn)
        paper_trades = queries.trades(conn, "ETHUSDT", "1m", T0, "paper")
        all_trades = queries.trades(conn, "ETHUSDT", "1m", None)
        (position,) = queries.positions(conn)
        overview = queries.overview(conn)
        candles = queries.candles(conn, "ETHUSDT", "1m", limit=3)

    (eth,) = series
    assert eth["candles"] == 5 and eth["newest_open_time"] == int((T0 + timedelta(minutes=4)).timestamp())
    assert 25 <= eth["ingest_lag_s"] < 3600 and eth["newest_closed_age_s"] > 0
    assert [t["mode"] for t in paper_trades] == ["paper"] and len(all_trades) == 2
    assert position["last_close"] == 14 and position["unrealized_pnl"] == (14 - 11) * 2 and position["last_decision"] is None
    assert overview["mode"] == "testnet"  # the trader ran last in testnet (newest order / equity mark)
    assert overview["kill_switches"] == [{"mode": "testnet", "state": "HALTED", "reason": "drawdown", "by": "risk",
                                          "updated_at": overview["kill_switches"][0]["updated_at"]}]
    assert overview["equity"]["pnl"] == 100 and overview["equity"]["pnl_pct"] == pytest.approx(0.1)
    assert [c["close"] for c in candles] == [12, 13, 14] and [c["closed"] for c in candles] == [True, True, False]


def test_an_empty_database_gives_an_empty_page_not_an_error(engine):
    with engine.connect() as conn:
        overview = queries.overview(conn)

    assert overview == {"mode": "paper", "series": [], "positions": [], "open_orders": [], "kill_switches": [],
                        "equity": {"mode": "paper", "curve": [], "start": None, "last": None, "pnl": None, "pnl_pct": None},
                        "precision": {}}
    with engine.connect() as conn:  # before the trader recorded anything, the page shows the trader's TRADER_MODE
        assert queries.overview(conn, default_mode="testnet")["mode"] == "testnet"


def _candles(engine, symbol, interval, rows, source, ingested_at=None):
    """``rows``: (open_time, close_time, price string, volume string); ingested at ``ingested_at`` (default: now)."""
    with engine.begin() as c:
        c.execute(sa.text("""INSERT INTO market.candles (symbol, interval, open_time, close_time, open, high, low, close, volume,
                             is_closed, event_time, source, ingested_at)
                             VALUES (:s, :i, :t, :ct, :p, :p, :p, :p, :v, true, :ct, :src, coalesce(:ing, now()))"""),
                  [{"s": symbol, "i": interval, "t": t, "ct": ct, "p": p, "v": v, "src": source, "ing": ingested_at}
                   for t, ct, p, v in rows])


def test_fills_are_marked_on_the_chart_of_their_own_sleeves_series(engine):
    """A 1m sleeve and a 1h sleeve trade BTCUSDT: the 1h chart gets only the 1h sleeve's fills."""
    with engine.begin() as c:
        for n, interval in enumerate(("1m", "1h", "1m")):
            sleeve = f"BTCUSDT:{interval}:sma_cross"
            c.execute(sa.text("INSERT INTO trading.sleeves (sleeve, symbol, interval, strategy) VALUES (:s, 'BTCUSDT', :i, 'sma_cross')"
                              " ON CONFLICT DO NOTHING"), {"s": sleeve, "i": interval})
            c.execute(sa.text("""INSERT INTO trading.orders (client_order_id, sleeve, mode, symbol, side, type, quantity, status,
                                 signal_open_time) VALUES (:id, :sl, 'paper', 'BTCUSDT', 'BUY', 'MARKET', 1, 'FILLED', :t)"""),
                      {"id": f"o{n}", "sl": sleeve, "t": T0})
            c.execute(sa.text("""INSERT INTO trading.fills (client_order_id, trade_id, symbol, side, quantity, price, fee, fee_asset, filled_at)
                                 VALUES (:id, '1', 'BTCUSDT', 'BUY', 1, 60000, 0, 'USDT', :t)"""), {"id": f"o{n}", "t": T0 + timedelta(minutes=n)})

    with engine.connect() as conn:
        hourly = queries.trades(conn, "BTCUSDT", "1h", None)
        minutely = queries.trades(conn, "BTCUSDT", "1m", None)

    assert [t["client_order_id"] for t in hourly] == ["o1"]
    assert [t["client_order_id"] for t in minutely] == ["o0", "o2"]


def test_precision_follows_each_symbols_tick_and_step(engine):
    """Binance pads prices to 8 decimals; the page shows as many as the tick needs: ALGOUSDT ~0.25 has 4."""
    t = [(T0 + timedelta(hours=i), T0 + timedelta(hours=i, minutes=59, seconds=59.999)) for i in range(3)]
    _candles(engine, "ALGOUSDT", "1h", [(*t[0], "0.25010000", "1200.00000000"), (*t[1], "0.25050000", "7.00000000"),
                                        (*t[2], "0.24980000", "31.00000000")], "file")
    _candles(engine, "BTCUSDT", "1h", [(*t[0], "64123.45000000", "1.23456000"), (*t[1], "64123.40000000", "0.10000000")], "file")
    with engine.begin() as c:
        c.execute(sa.text("""INSERT INTO trading.orders (client_order_id, sleeve, mode, symbol, side, type, quantity, status, signal_open_time)
                             VALUES ('a', 'ALGOUSDT:1h:sma_cross', 'paper', 'ALGOUSDT', 'BUY', 'MARKET', 3996.0, 'FILLED', :t)"""), {"t": T0})

    with engine.connect() as conn:
        got = queries.precision(conn, ["ALGOUSDT", "BTCUSDT", "ETHUSDT"])

    assert got == {"ALGOUSDT": {"price": 4, "quantity": 0}, "BTCUSDT": {"price": 2, "quantity": 5},
                   "ETHUSDT": {"price": 2, "quantity": 0}}  # nothing stored: cents, whole units


def test_only_streamed_series_are_expected_to_be_fresh(engine):
    """Imported history (file, REST, a replay of 2021) is "history", however old; a series arriving live is
    "streamed", and so is a configured subscription; the page marks only those red when they stop."""
    old = [(T0 + timedelta(minutes=i), T0 + timedelta(minutes=i, seconds=59.999), "10", "1") for i in range(3)]
    _candles(engine, "ALGOUSDT", "1m", old, "file", datetime.now(timezone.utc) - timedelta(hours=3))
    _candles(engine, "BTCUSDT", "1h", old, "replay")  # replayed today, closed in 2024
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    live = [(now - timedelta(minutes=40 - i), now - timedelta(minutes=39 - i, milliseconds=1), "10", "1") for i in range(5)]
    _candles(engine, "BTCUSDT", "1m", live, "binance", now - timedelta(minutes=34))  # arrived live, stopped ~34 min ago

    with engine.connect() as conn:
        plain = {(s["symbol"], s["interval"]): s["streamed"] for s in queries.list_series(conn)}
        subscribed = {(s["symbol"], s["interval"]): s["streamed"] for s in queries.list_series(conn, {("ALGOUSDT", "1m")})}

    assert plain == {("ALGOUSDT", "1m"): False, ("BTCUSDT", "1h"): False, ("BTCUSDT", "1m"): True}
    assert subscribed[("ALGOUSDT", "1m")] is True
