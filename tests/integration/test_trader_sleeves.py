"""Several sleeves in one trader on real features: every bundled strategy, each with its own allocation;
the live loop's decisions equal the strategy's vectorised signals over the stored features (backtest parity)."""

from decimal import Decimal as D

import pandas as pd
import pytest
import sqlalchemy as sa

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
