"""Cross-check against an independent engine: backtesting.py 0.6.6 on the bundled real data.

backtesting.py runs its own SMA crossover (pandas rolling means, ``backtesting.lib.crossover``) with
``trade_on_close=False``, i.e. a signal on a close fills at the next open. Its closed trades must be
ours: the same entry and exit times and the same per-trade return before fees.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import crossover

from tests.helpers import SAMPLE
from trader.backtest.candles import read_kline_file
from trader.backtest.engine import FillModel
from trader.backtest.runner import run_backtest
from trader.strategies import build_strategy

FILES = ["BTCUSDT-1m.csv.gz", "BTCUSDT-1h.csv", "BTCUSDT-30m.csv", "BTCUSDT-1d.csv"]


def _sma(values, n):
    return pd.Series(values).rolling(n).mean().to_numpy()


class ReferenceSmaCross(Strategy):
    fast, slow = 10, 30

    def init(self):
        self.f = self.I(_sma, self.data.Close, self.fast)
        self.s = self.I(_sma, self.data.Close, self.slow)

    def next(self):
        if crossover(self.f, self.s):
            if not self.position:
                self.buy()
        elif crossover(self.s, self.f):
            self.position.close()


def reference_trades(candles: pd.DataFrame, fast: int, slow: int) -> pd.DataFrame:
    data = pd.DataFrame({"Open": candles["open"].to_numpy(), "High": candles["high"].to_numpy(),
                         "Low": candles["low"].to_numpy(), "Close": candles["close"].to_numpy(),
                         "Volume": candles["volume"].to_numpy()},
                        index=pd.to_datetime(candles["open_time"].to_numpy(), unit="ms", utc=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(data, ReferenceSmaCross, cash=1e12, commission=0.0, trade_on_close=False)
        return bt.run(fast=fast, slow=slow)._trades


@pytest.mark.parametrize("fast, slow", [(10, 30), (10, 50), (30, 50)])
@pytest.mark.parametrize("name", FILES)
def test_sma_cross_trades_equal_backtesting_py(name, fast, slow):
    candles = read_kline_file(SAMPLE / name)

    ours = run_backtest(candles, build_strategy("sma_cross", fast=fast, slow=slow), FillModel(fee_bps=10)).trades
    ref = reference_trades(candles, fast, slow)

    assert len(ours) == len(ref) and len(ref) > 0
    assert list(ours["entry_time"]) == list(ref["EntryTime"])
    assert list(ours["exit_time"]) == list(ref["ExitTime"])
    gross = ours["exit_price"].to_numpy() / ours["entry_price"].to_numpy() - 1.0
    np.testing.assert_allclose(gross, ref["ReturnPct"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours["entry_price"].to_numpy(), ref["EntryPrice"].to_numpy())


def test_without_fees_our_trade_returns_are_backtesting_py_returns():
    candles = read_kline_file(SAMPLE / "BTCUSDT-1h.csv")

    ours = run_backtest(candles, "sma_cross", FillModel(fee_bps=0)).trades
    ref = reference_trades(candles, 10, 30)

    np.testing.assert_allclose(ours["return_pct"].to_numpy() / 100.0, ref["ReturnPct"].to_numpy(), rtol=0, atol=1e-12)
