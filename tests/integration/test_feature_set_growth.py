"""A spec registered for a sleeve becomes a column of market.features: its whole history once, then incrementally.

Real PostgreSQL. The stored values are the backtest's on-the-fly values, bit for bit (one function).
"""

import numpy as np
import pytest
import sqlalchemy as sa

from klinepipe.db import raw_transaction
from klinepipe.feature_set import register_specs
from klinepipe.feature_store import compute_pending_features, load_features
from klinepipe.features import DEFAULT_SPECS, compute_specs, parse_spec
from tests.helpers import sample_rows, seed_candles
from trader.backtest.db_source import load_candles_db
from trader.backtest.runner import feature_frame
from trader.strategies import build_strategy

pytestmark = pytest.mark.integration
SPECS = [parse_spec("sma(5)"), parse_spec("sma(20)"), parse_spec("bbands(20, 2.5)"), parse_spec("macd(8, 21, 5)")]


def _full(rows, specs):
    cols = np.array([[float(r[j]) for j in (4, 2, 3, 5)] for r in rows])
    return compute_specs(specs, cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3])


def _columns(engine) -> set[str]:
    with engine.connect() as c:
        return set(c.execute(sa.text("SELECT column_name FROM information_schema.columns"
                                     " WHERE table_schema = 'market' AND table_name = 'features'")).scalars())


def test_registered_specs_are_computed_for_the_whole_history_once_then_incrementally(engine):
    rows = sample_rows(1800)
    seed_candles(engine, rows[:1500])
    compute_pending_features(engine)
    with raw_transaction(engine) as cur:
        assert register_specs(cur, [*SPECS, DEFAULT_SPECS[2]], "test") == [s.text for s in SPECS]
        assert register_specs(cur, SPECS, "test") == []  # re-registering is a no-op

    (grown,) = compute_pending_features(engine)  # the set grew: the whole history, once

    assert grown.rows == 1500
    assert {"sma_5", "sma_20", "bb_upper_20_2p5", "macd_hist_8_21_5"} <= _columns(engine)
    stored = load_features(engine, "BTCUSDT", "1m")
    want = _full(rows[:1500], SPECS)
    for column, values in want.items():
        np.testing.assert_array_equal(stored[column].to_numpy(dtype=float), values, err_msg=column)
    assert compute_pending_features(engine) == []

    seed_candles(engine, rows[1500:])
    (more,) = compute_pending_features(engine)  # then incrementally: only the new candles

    assert more.rows == 300
    stored = load_features(engine, "BTCUSDT", "1m")
    for column, values in _full(rows, SPECS).items():
        np.testing.assert_array_equal(stored[column].to_numpy(dtype=float), values, err_msg=column)


def test_stored_values_equal_the_backtests_on_the_fly_values(engine, database_url):
    rows = sample_rows(1200)
    seed_candles(engine, rows)
    strategy = build_strategy("sma_cross", fast=5, slow=20)
    with raw_transaction(engine) as cur:
        register_specs(cur, strategy.feature_specs(), "test")
    compute_pending_features(engine)

    on_the_fly = feature_frame(load_candles_db(database_url, "BTCUSDT", "1m"), strategy)
    stored = load_features(engine, "BTCUSDT", "1m")

    for column in ("sma_5", "sma_20"):
        assert np.isfinite(on_the_fly[column][19:]).all()
        np.testing.assert_array_equal(stored[column].to_numpy(dtype=float), on_the_fly[column].to_numpy(), err_msg=column)


def test_a_bad_registered_spec_is_left_out_and_the_others_are_computed(engine):
    seed_candles(engine, sample_rows(300))
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO etl.feature_specs (spec, registered_by) VALUES ('smaa(3)', 'hand'), ('sma(7)', 'hand')"))

    (update,) = compute_pending_features(engine)

    assert update.rows == 300 and "sma_7" in _columns(engine)
    assert load_features(engine, "BTCUSDT", "1m")["sma_7"].notna().sum() == 294
