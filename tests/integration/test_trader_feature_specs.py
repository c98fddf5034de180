"""A sleeve's strategy at any parameters, live: its specs are registered at start, it waits until the features
task has computed them, then decides every candle exactly as the backtest does, reading only its own columns."""

from decimal import Decimal as D

import numpy as np
import pytest
import sqlalchemy as sa

from klinepipe.feature_store import compute_pending_features
from tests.helpers import sample_rows, seed_features, write_csv
from tests.traders import connector
from trader import market_reads
from trader.backtest.candles import read_kline_file
from trader.backtest.runner import feature_frame, strategy_signals
from trader.brokers.paper import PaperBroker
from trader.loop import Trader
from trader.sleeve import Sleeve
from trader.strategies import build_strategy
from trader.transaction import db_candles

pytestmark = pytest.mark.integration


def _signals(engine) -> list[str]:
    with engine.connect() as c:
        return list(c.execute(sa.text("SELECT action FROM trading.signals ORDER BY open_time")).scalars())


def test_a_sleeve_waits_for_its_registered_specs_then_decides_as_the_backtest(db, database_url, tmp_path):
    rows = sample_rows(300)
    seed_features(db, rows)  # the default set only: sma_5 and sma_20 are not computed
    strategy = build_strategy("sma_cross", fast=5, slow=20)
    connect = connector(database_url)
    sleeve = Sleeve(name="BTCUSDT:1m:sma_cross", symbol="BTCUSDT", interval="1m", strategy=strategy, allocation=D("1000"))
    trader = Trader(connect, [sleeve], PaperBroker(db_candles(connect), fee_bps=D("10")), paper_balance=D("10000"))

    trader.step()
    waited = _signals(db)
    with db.connect() as c:
        registered = set(c.execute(sa.text("SELECT spec FROM etl.feature_specs")).scalars())
    compute_pending_features(db)  # what the features DAG does next
    trader.step()

    assert waited == [] and registered == {"sma(5)", "sma(20)"}
    candles = read_kline_file(write_csv(tmp_path / "BTCUSDT-1m.csv", rows))
    want = strategy_signals(strategy, feature_frame(candles, strategy))
    assert _signals(db) == [{1: "BUY", -1: "SELL", 0: "HOLD"}[int(v)] for v in want]
    assert (want != 0).sum() >= 4


def test_the_loop_reads_only_the_columns_the_strategy_declares(db):
    seed_features(db, sample_rows(100))
    with db.connect() as c:
        raw = c.connection.cursor()
        frame = market_reads.load_new_features(raw, "BTCUSDT", "1m", None, 0, ("sma_10", "sma_30"),
                                               build_strategy("sma_cross").feature_specs())

    assert list(frame.columns) == ["open_time", "close", "sma_10", "sma_30"] and len(frame) == 100
    assert np.isfinite(frame["sma_30"].iloc[29:].astype(float)).all()
