"""Exact decisions: on real 1-minute data with exact ties, SMA crossover trades equal a ``Decimal`` reference.

LINKUSDT (USD-M futures, 3-decimal prices, data/sample/futures_um, see its README) has bars where the
fast and slow means are *exactly* equal in decimal arithmetic (25 for 10/30 in the 14 days). Float means
differ there by ~1e-15 with a sign that depends on how they are summed, and a strict cross test fires on
that noise. Our SMA is the exact decimal mean correctly rounded (``klinepipe.rolling``), so a tie is a
tie. backtesting.py (pandas rolling means) is run too: every trade it makes that we do not (or the
other way round) comes from a cross it saw on a bar that is an exact tie, i.e. one of its noise crosses.
"""

import csv
import gzip
import warnings
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from klinepipe.rolling import rolling_mean
from tests.helpers import SAMPLE
from tests.unit.test_backtest_crosscheck import reference_trades
from trader.backtest.candles import read_kline_file
from trader.backtest.engine import FillModel
from trader.backtest.runner import run_backtest
from trader.strategies import build_strategy
from trader.strategies.signals import crossed_above, crossed_below

LINK = SAMPLE / "futures_um" / "LINKUSDT-1m.csv.gz"
PAIRS = [(10, 30), (5, 20), (10, 50), (20, 50)]


def _decimal_candles() -> tuple[list[int], list[Decimal], list[Decimal]]:
    with gzip.open(LINK, "rt") as f:
        rows = list(csv.reader(f))[1:]
    return [int(r[0]) for r in rows], [Decimal(r[1]) for r in rows], [Decimal(r[4]) for r in rows]


def decimal_cross_trades(times: list[int], opens: list[Decimal], closes: list[Decimal], fast: int, slow: int):
    """The reference, in ``Decimal`` only: sign of mean_fast - mean_slow, i.e. of sum_fast * slow - sum_slow * fast
    (exact), strict crosses, long-only, each signal filled at the next open. Returns (entry, exit, ties)."""
    sums, running = [Decimal(0)], Decimal(0)
    for c in closes:
        running += c
        sums.append(running)
    sign = [None] * len(closes)
    for i in range(slow - 1, len(closes)):
        diff = (sums[i + 1] - sums[i + 1 - fast]) * slow - (sums[i + 1] - sums[i + 1 - slow]) * fast
        sign[i] = (diff > 0) - (diff < 0)
    trades, entry = [], None
    for i in range(slow, len(closes) - 1):  # a signal on the last candle never fills
        up, down = sign[i - 1] == -1 and sign[i] == 1, sign[i - 1] == 1 and sign[i] == -1
        if up and entry is None:
            entry = (times[i + 1], opens[i + 1])
        elif down and entry is not None:
            trades.append((entry[0], times[i + 1], entry[1], opens[i + 1]))
            entry = None
    return trades, {i for i, s in enumerate(sign) if s == 0}


def _ms(times) -> list[int]:
    return [round(t.timestamp() * 1000) for t in times]


@pytest.fixture(scope="module")
def data():
    return _decimal_candles(), read_kline_file(LINK)


@pytest.mark.parametrize("fast, slow", PAIRS)
def test_sma_cross_trades_equal_the_decimal_reference_on_data_with_exact_ties(data, fast, slow):
    (times, opens, closes), candles = data
    want, ties = decimal_cross_trades(times, opens, closes, fast, slow)

    ours = run_backtest(candles, build_strategy("sma_cross", fast=fast, slow=slow), FillModel(fee_bps=0)).trades

    assert len(ties) >= 5 and len(want) > 100  # the data does have exact ties
    got = list(zip(_ms(ours["entry_time"]), _ms(ours["exit_time"])))
    assert got == [(e, x) for e, x, _, _ in want]
    assert [Decimal(repr(p)) for p in ours["entry_price"]] == [p for _, _, p, _ in want]


@pytest.mark.parametrize("fast, slow", PAIRS)
def test_float_means_cross_on_noise_where_exact_means_tie(data, fast, slow):
    """The test that would have caught it: a per-window float mean (v2's SMA) crosses on ties."""
    (times, opens, closes), candles = data
    _, ties = decimal_cross_trades(times, opens, closes, fast, slow)
    close = candles["close"].to_numpy()
    ff, fs = rolling_mean(close, fast), rolling_mean(close, slow)
    exact = build_strategy("sma_cross", fast=fast, slow=slow)

    noisy = crossed_above(ff, fs) | crossed_below(ff, fs)
    clean = (run_backtest(candles, exact, FillModel(fee_bps=0)).signals != 0)

    differ = np.nonzero(noisy != clean)[0]
    assert len(differ) > 0
    assert all(i in ties or i - 1 in ties for i in differ)  # every extra float cross touches an exact tie


def test_backtesting_py_differs_from_us_only_by_its_noise_crosses(data):
    """backtesting.py's own SMA (pandas rolling means) on the same data: its signals that ours lack, and
    ours that it lacks, are all on bars next to an exact tie; its trades are therefore not the Decimal ones."""
    (times, opens, closes), candles = data
    fast, slow = 10, 30
    want, ties = decimal_cross_trades(times, opens, closes, fast, slow)
    close = pd.Series(candles["close"].to_numpy())
    pf, ps = close.rolling(fast).mean().to_numpy(), close.rolling(slow).mean().to_numpy()
    theirs = crossed_above(pf, ps) | crossed_below(pf, ps)  # backtesting.lib.crossover, both ways
    ours = run_backtest(candles, build_strategy("sma_cross", fast=fast, slow=slow), FillModel(fee_bps=0))

    differ = np.nonzero(theirs != (ours.signals != 0))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = reference_trades(candles, fast, slow)

    assert len(differ) > 0 and all(i in ties or i - 1 in ties for i in differ)
    their_entries = set(_ms(ref["EntryTime"]))
    assert their_entries != {e for e, _, _, _ in want}  # a different set of trades, from noise alone
