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
        c.execute(sa.text("INSERT INTO trading.sleeves (sleeve, symbol, interval, strategy) VALUES ('ETHUSDT:1m:sma_cross', 'ETHUSDT', '1m', 'sma_cross')"))
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
        paper_trades = queries.trades(conn, "ETHUSDT", T0, "paper")
        all_trades = queries.trades(conn, "ETHUSDT", None)
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
                        "equity": {"mode": "paper", "curve": [], "start": None, "last": None, "pnl": None, "pnl_pct": None}}
