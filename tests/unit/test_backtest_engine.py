"""The backtest fill model: next-open fills, fees, slippage, sizing, long-only/short, equity (pure)."""

import math

import numpy as np
import pandas as pd
import pytest

from trader.backtest.candles import read_kline_file
from trader.backtest.engine import FillModel, round_trips, simulate, target_positions, trades_frame
from trader.backtest.metrics import drawdown, summarise
from trader.backtest.runner import run_signals
from tests.helpers import SAMPLE

OPEN = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0])
CLOSE = OPEN + 0.5


def _candles(open_=OPEN, close=CLOSE) -> pd.DataFrame:
    n = len(open_)
    return pd.DataFrame({"open_time": 1_700_000_000_000 + 60_000 * np.arange(n, dtype=np.int64), "open": open_,
                         "high": np.maximum(open_, close) + 1, "low": np.minimum(open_, close) - 1, "close": close,
                         "volume": np.ones(n)})


def test_a_signal_on_a_close_fills_at_the_next_open_with_the_fee_on_both_sides():
    signals = np.array([0, 1, 0, 0, -1, 0, 0], dtype=np.int8)
    model = FillModel(fee_bps=10, cash=1000.0)

    f = simulate(OPEN, CLOSE, signals, model)

    assert f.entry_bar.tolist() == [2] and f.exit_bar.tolist() == [5]
    qty = 1000.0 / (12.0 * 1.001)
    assert f.qty[0] == pytest.approx(qty) and f.entry_price[0] == 12.0 and f.exit_price[0] == 15.0
    assert f.fee[0] == pytest.approx(qty * 12.0 * 0.001 + qty * 15.0 * 0.001)
    assert f.pnl[0] == pytest.approx(qty * 3.0 - f.fee[0])
    assert f.equity[-1] == pytest.approx(1000.0 + f.pnl[0])
    assert f.held.tolist() == [0, 0, qty, qty, qty, 0, 0]


def test_slippage_moves_both_fills_against_the_trade():
    signals = np.array([1, 0, -1, 0, 0, 0, 0], dtype=np.int8)

    f = simulate(OPEN, CLOSE, signals, FillModel(fee_bps=0, slippage_bps=100))

    assert f.entry_price[0] == pytest.approx(11.0 * 1.01) and f.exit_price[0] == pytest.approx(13.0 * 0.99)


def test_long_only_ignores_a_sell_when_flat_and_a_buy_when_long():
    signals = np.array([-1, 1, 1, 0, -1, -1, 0], dtype=np.int8)

    entries, exits, direction = round_trips(target_positions(signals))

    assert entries.tolist() == [2] and exits.tolist() == [5] and direction.tolist() == [1]


def test_a_signal_on_the_last_bar_never_fills_and_an_open_position_is_marked_to_market():
    signals = np.array([0, 0, 0, 0, 1, 0, 1], dtype=np.int8)

    result = run_signals(_candles(), signals, FillModel(fee_bps=0, cash=160.0))

    assert result.fills.entry_bar.tolist() == [5] and result.fills.exit_bar.tolist() == [-1]
    assert result.trades.empty and result.summary["open_position"] is True
    assert result.fills.equity[-1] == pytest.approx(160.0 / 15.0 * 16.5)


def test_allow_short_opens_a_short_on_sell_and_flips_on_buy():
    signals = np.array([-1, 0, 1, 0, 0, -1, 0], dtype=np.int8)

    f = simulate(OPEN, CLOSE, signals, FillModel(fee_bps=0, allow_short=True, cash=1100.0))

    assert f.entry_bar.tolist() == [1, 3, 6] and f.exit_bar.tolist() == [3, 6, -1] and f.direction.tolist() == [-1, 1, -1]
    assert f.pnl[0] == pytest.approx(-200.0)  # short 100 @ 11, cover @ 13
    assert f.pnl[1] == pytest.approx(900.0 / 13.0 * 3.0)  # long 900 / 13 @ 13, out @ 16


def test_size_is_a_fraction_of_equity_and_order_quote_with_qty_step_rounds_down():
    signals = np.array([1, 0, -1, 0, 0, 0, 0], dtype=np.int8)

    half = simulate(OPEN, CLOSE, signals, FillModel(fee_bps=0, size=0.5, cash=1100.0))
    quote = simulate(OPEN, CLOSE, signals, FillModel(fee_bps=0, order_quote=100.0, qty_step=0.1, cash=1100.0))

    assert half.qty[0] == pytest.approx(50.0)
    assert quote.qty[0] == pytest.approx(9.0)  # 100 / 11 = 9.09 -> 9.0


def test_size_at_signal_uses_the_decision_close_as_the_live_trader_must():
    signals = np.array([1, 0, -1, 0, 0, 0, 0], dtype=np.int8)
    model = FillModel(fee_bps=10, order_quote=100.0, qty_step=0.1, cash=1100.0, size_at="signal")

    f = simulate(OPEN, CLOSE, signals, model)

    assert f.qty[0] == pytest.approx(9.5)  # 100 / 10.5 (bar 0's close) = 9.52 -> 9.5, filled at bar 1's open
    assert f.entry_price[0] == 11.0 and f.fee[0] == pytest.approx(9.5 * 11.0 * 0.001 + 9.5 * 13.0 * 0.001)


def test_trades_frame_has_the_report_columns_and_percent_returns():
    signals = np.array([0, 1, 0, 0, -1, 0, 0], dtype=np.int8)
    candles = _candles()

    trades = trades_frame(simulate(OPEN, CLOSE, signals, FillModel(fee_bps=0)), candles["open_time"].to_numpy())

    assert list(trades.columns) == ["entry_time", "exit_time", "side", "qty", "entry_price", "exit_price", "fee", "pnl", "return_pct"]
    assert trades["return_pct"].iloc[0] == pytest.approx(25.0)
    assert trades["entry_time"].iloc[0] == pd.Timestamp(int(candles["open_time"][2]), unit="ms", tz="UTC")


def _reference(open_, close, signals, model):
    """A plain bar-by-bar account, written independently of the vectorised engine."""
    cash, qty, side, entry, fee_rate, slip = model.cash, 0.0, 0, 0.0, model.fee_bps / 1e4, model.slippage_bps / 1e4
    want, equity, pnls = 0, [], []
    for j in range(len(open_)):
        if j > 0 and signals[j - 1] != 0:
            want = 1 if signals[j - 1] > 0 else (-1 if model.allow_short else 0)
        if side != want and side != 0:
            exit_price = open_[j] * (1 - side * slip)
            gain = side * qty * (exit_price - entry) - qty * exit_price * fee_rate
            cash += gain
            pnls[-1] += gain
            side = 0
        if side != want:
            entry = open_[j] * (1 + want * slip)
            qty = model.size * cash / (entry * (1 + fee_rate))
            cash -= qty * entry * fee_rate
            pnls.append(-qty * entry * fee_rate)
            side = want
        equity.append(cash + side * qty * (close[j] - entry))
    return np.array(equity), pnls


@pytest.mark.parametrize("allow_short", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_fills_equal_a_bar_by_bar_account_on_real_candles(seed, allow_short):
    candles = read_kline_file(SAMPLE / "BTCUSDT-1m.csv.gz").iloc[:3000]
    o, c = candles["open"].to_numpy(), candles["close"].to_numpy()
    signals = np.random.default_rng(seed).choice(np.array([-1, 0, 0, 0, 0, 0, 0, 1], dtype=np.int8), size=len(o))
    model = FillModel(fee_bps=7.5, slippage_bps=2, size=0.8, allow_short=allow_short)

    f = simulate(o, c, signals, model)
    equity, pnls = _reference(o, c, signals, model)

    np.testing.assert_allclose(f.equity, equity, rtol=1e-11)
    np.testing.assert_allclose(f.pnl[f.exit_bar >= 0], np.array(pnls)[: int((f.exit_bar >= 0).sum())], rtol=1e-9, atol=1e-9)


def test_summary_metrics_on_a_known_account():
    signals = np.array([0, 1, 0, 0, -1, 0, 0], dtype=np.int8)
    candles = _candles()
    f = simulate(OPEN, CLOSE, signals, FillModel(fee_bps=0, cash=1200.0))

    s = summarise(f, candles["open_time"].to_numpy(), CLOSE, 1200.0, 60_000)

    assert s["bars"] == 7 and s["trades"] == 1 and s["win_rate_pct"] == 100.0
    assert s["total_return_pct"] == pytest.approx(25.0)
    assert s["exposure_pct"] == pytest.approx(300 / 7)
    assert s["buy_and_hold_return_pct"] == pytest.approx(100 * (16.5 / 10.5 - 1))
    assert s["profit_factor"] is None and s["fees_paid"] == 0.0
    assert s["start"] == "2023-11-14T22:13:20.000Z" and s["end"] == "2023-11-14T22:20:20.000Z"
    assert s["max_drawdown_pct"] == pytest.approx(100 * float(drawdown(f.equity).min()))
    assert s["max_drawdown_pct"] == 0.0 and math.isfinite(s["sharpe"]) and s["sortino"] is None  # no losing bar


def test_drawdown_is_the_fall_from_the_running_peak():
    assert drawdown(np.array([100.0, 120.0, 90.0, 130.0])).tolist() == pytest.approx([0.0, 0.0, -0.25, 0.0])


def test_the_per_trade_loop_and_the_cumulative_product_size_alike():
    candles = read_kline_file(SAMPLE / "BTCUSDT-1h.csv")
    o, c = candles["open"].to_numpy(), candles["close"].to_numpy()
    signals = np.random.default_rng(7).choice(np.array([-1, 0, 0, 0, 1], dtype=np.int8), size=len(o))

    vectorised = simulate(o, c, signals, FillModel(fee_bps=10, size=0.9))
    looped = simulate(o, c, signals, FillModel(fee_bps=10, size=0.9, qty_step=1e-12))

    np.testing.assert_allclose(looped.equity, vectorised.equity, rtol=1e-9)
    np.testing.assert_allclose(looped.pnl, vectorised.pnl, rtol=1e-6, atol=1e-6)
