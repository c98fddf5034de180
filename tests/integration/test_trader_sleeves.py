"""Several sleeves in one trader on real features: every bundled strategy, each with its own allocation;
the live loop's decisions equal the strategy's vectorised signals over the stored features (backtest parity)."""

import re
from decimal import Decimal as D

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.helpers import sample_rows, seed_features
from tests.traders import connector
from trader.brokers.paper import PaperBroker
from trader.loop import Trader
from trader.sleeve import RiskConfig, Sleeve
from trader.transaction import db_candles
from trader.strategies import REGISTRY, build_strategy

pytestmark = pytest.mark.integration
ALLOCATIONS = {name: D(500 + 250 * i) for i, name in enumerate(sorted(REGISTRY))}


def test_every_bundled_strategy_trades_its_own_sleeve_and_allocation(db, database_url):
    rows = sample_rows(700)
    seed_features(db, rows)
    connect = connector(database_url)
    sleeves = [Sleeve(name=f"BTCUSDT:1m:{n}", symbol="BTCUSDT", interval="1m", strategy=build_strategy(n), allocation=a)
               for n, a in ALLOCATIONS.items()]
    trader = Trader(connect, sleeves, PaperBroker(db_candles(connect)), risk=RiskConfig(), paper_balance=D("100000"))

    trader.step()

    features = pd.read_sql("SELECT * FROM market.features ORDER BY open_time", db)
    with db.connect() as c:
        signals = pd.read_sql("SELECT sleeve, open_time, action FROM trading.signals ORDER BY open_time", c)
        buys = c.execute(sa.text("SELECT o.sleeve, o.quantity, o.ref_price FROM trading.orders o WHERE side = 'BUY'")).fetchall()
    for name, alloc in ALLOCATIONS.items():
        want = build_strategy(name).signals(features)
        got = signals[signals.sleeve == f"BTCUSDT:1m:{name}"].action.map({"BUY": 1, "SELL": -1, "HOLD": 0}).to_numpy()
        assert list(got) == list(want), name
        mine = [b for b in buys if b.sleeve == f"BTCUSDT:1m:{name}"]
        assert mine, f"{name} never bought"
        assert all(alloc - D("1") < b.quantity * b.ref_price <= alloc for b in mine), name


def readme_sleeves_file() -> str:
    """The sleeves file the README shows (its only ```toml block): the test trades exactly what a user copies."""
    text = (ROOT / "README.md").read_text()
    return re.search(r"```toml\n(.*?)```", text, re.S).group(1)


def test_the_same_strategy_twice_on_one_symbol_with_its_own_params_allocation_and_orders(db, database_url, tmp_path, monkeypatch):
    from trader.__main__ import build_risk, build_sleeves
    from trader.config import load_settings
    from trader.orders import client_order_id

    (tmp_path / "sleeves.toml").write_text(readme_sleeves_file())
    for k, v in {"DATABASE_URL": database_url, "TRADER_SLEEVES_FILE": str(tmp_path / "sleeves.toml"),
                 "TRADER_STALE_INTERVALS": "0", "TRADER_MAX_ORDERS_PER_MINUTE": "0"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("TRADER_SLEEVES", raising=False)
    seed_features(db, sample_rows(700))
    settings = load_settings()
    connect = connector(database_url)
    trader = Trader(connect, build_sleeves(settings), PaperBroker(db_candles(connect)), risk=build_risk(settings),
                    paper_balance=D("100000"))

    trader.step()

    features = pd.read_sql("SELECT * FROM market.features ORDER BY open_time", db)
    with db.connect() as c:
        signals = pd.read_sql("SELECT sleeve, action FROM trading.signals ORDER BY open_time", c)
        orders = c.execute(sa.text("SELECT sleeve, client_order_id, type, side, quantity, ref_price, price, signal_open_time"
                                   " FROM trading.orders")).fetchall()
        held = dict(c.execute(sa.text("SELECT sleeve, quantity FROM trading.positions WHERE mode = 'paper'")).fetchall())
        filled = dict(c.execute(sa.text(
            "SELECT o.sleeve, sum(CASE WHEN f.side = 'BUY' THEN f.quantity ELSE -f.quantity END) FROM trading.fills f"
            " JOIN trading.orders o USING (client_order_id) GROUP BY o.sleeve")).fetchall())
    fast, slow = "BTCUSDT:1m:sma_cross", "BTCUSDT:1m:sma_slow"
    want = {fast: build_strategy("sma_cross", fast=10, slow=30).signals(features),
            slow: build_strategy("sma_cross", fast=10, slow=50).signals(features)}
    assert list(want[fast]) != list(want[slow])
    for name in (fast, slow):
        got = signals[signals.sleeve == name].action.map({"BUY": 1, "SELL": -1, "HOLD": 0}).to_numpy()
        assert list(got) == list(want[name]), name
    mine = {name: [o for o in orders if o.sleeve == name] for name in (fast, slow)}
    assert mine[fast] and mine[slow] and set(held) == {fast, slow}
    assert held == {name: filled.get(name, D(0)) for name in (fast, slow)}  # each position is its own orders' fills
    assert {o.type for o in mine[fast]} == {"MARKET"} and {o.type for o in mine[slow]} == {"LIMIT"}
    assert all(D("499") < o.quantity * o.ref_price <= D("500") for o in mine[fast] if o.side == "BUY")
    limit = [o for o in mine[slow] if o.side == "BUY"]  # 5 bps below the close (on the tick); TRADER_ORDER_QUOTE's 1000
    assert limit and all(o.ref_price * D("0.9995") - D("0.01") < o.price <= o.ref_price * D("0.9995") for o in limit)
    assert all(D("999") < o.quantity * o.price <= D("1000") for o in limit)
    first = mine[fast][0]  # the sleeve's id is what TRADER_SLEEVES=BTCUSDT:1m:sma_cross has always given it
    assert first.client_order_id == client_order_id(fast, int(first.signal_open_time.timestamp() * 1000), first.side, "paper")
    assert not {o.client_order_id for o in mine[fast]} & {o.client_order_id for o in mine[slow]}
