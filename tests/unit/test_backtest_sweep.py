"""Parameter sweeps (both cores) and walk-forward out-of-sample folds."""

import json

import pandas as pd
import pytest

from tests.helpers import SAMPLE
from trader.backtest.candles import read_kline_file
from trader.backtest.engine import FillModel
from trader.backtest.runner import feature_frame, run_backtest
from trader.backtest.sweep import param_grid, run_sweep, run_walk_forward, walk_forward_windows
from trader.strategies import build_strategy

GRID = {"fast": [10, 30], "slow": [30, 50]}


@pytest.fixture(scope="module")
def data():
    candles = read_kline_file(SAMPLE / "BTCUSDT-1h.csv")
    return candles, feature_frame(candles)


def test_param_grid_is_every_combination_in_order():
    assert param_grid({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]


def test_sweep_rows_equal_single_backtests_best_first_and_invalid_points_reported(data):
    candles, frame = data

    table = run_sweep(candles, frame, "sma_cross", GRID, FillModel(), metric="total_return_pct", workers=2)

    valid = table[table["error"].isna()]
    assert len(table) == 4 and len(valid) == 3
    assert "fast < slow" in table[table["error"].notna()]["error"].iloc[0]
    assert valid["total_return_pct"].is_monotonic_decreasing
    for _, row in valid.iterrows():
        single = run_backtest(candles, build_strategy("sma_cross", fast=int(row["fast"]), slow=int(row["slow"])), FillModel())
        assert row["total_return_pct"] == pytest.approx(single.summary["total_return_pct"], rel=1e-12)
        assert row["trades"] == single.summary["trades"]


def test_two_workers_give_the_same_table_as_one(data):
    candles, frame = data

    one = run_sweep(candles, frame, "sma_cross", GRID, FillModel(), workers=1)
    two = run_sweep(candles, frame, "sma_cross", GRID, FillModel(), workers=2)

    pd.testing.assert_frame_equal(one, two)


def test_unknown_metric_is_refused(data):
    with pytest.raises(ValueError, match="unknown metric"):
        run_sweep(*data, "sma_cross", GRID, FillModel(), metric="luck")


def test_walk_forward_windows_tile_the_bars():
    windows = walk_forward_windows(100, 4)

    assert windows[0] == ((0, 20), (20, 40)) and windows[-1] == ((60, 80), (80, 100))
    assert all(train[1] == test[0] for train, test in windows)


def test_walk_forward_trades_each_fold_out_of_sample_with_the_in_sample_best(data):
    candles, frame = data

    wf = run_walk_forward(candles, frame, "sma_cross", GRID, FillModel(), folds=3, metric="sharpe", workers=2)

    assert list(wf["fold"]) == [1, 2, 3]
    assert all(wf["train_end"].iloc[i] == wf["test_start"].iloc[i] for i in range(3))
    first = walk_forward_windows(len(candles), 3)[0]
    in_sample = run_sweep(candles, frame, "sma_cross", GRID, FillModel(), metric="sharpe", workers=1, bars=first[0])
    assert json.loads(wf["params"].iloc[0]) == {k: int(in_sample.iloc[0][k]) for k in GRID}
    assert wf["oos_final_equity"].iloc[0] == pytest.approx(FillModel().cash * (1 + wf["oos_total_return_pct"].iloc[0] / 100))
    assert wf["oos_final_equity"].iloc[1] == pytest.approx(wf["oos_final_equity"].iloc[0] * (1 + wf["oos_total_return_pct"].iloc[1] / 100))
