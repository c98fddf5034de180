"""Vectorised, causal building blocks for strategies (pure numpy): crossings of two series, thresholds, ties.

Every crossing and threshold test of the bundled strategies goes through ``side``: where two values are within
``tol`` of each other they are *tied* (side 0), and a tie is never a cross. The SMAs are exact (``klinepipe.rolling``:
two means that exact decimal arithmetic finds equal are equal doubles), so SMA crosses use ``tol = 0``. An EMA, an
RSI, a MACD line or a Bollinger band is not exactly representable (its exact value is a rational with a huge
denominator): its double carries float noise whose sign depends on how it was summed (TA-Lib, pandas, an incremental
update), ~1e-16..1e-13 of the price. Those use ``price_tie(close)``: ``TIE`` (1e-9) of the price, a bound under
half of any Binance price tick (the finest relative tick, BTCUSDT's 0.01 at 100,000, is 1e-7 of the price), so a
difference the market can show (a tick) is never a tie, and one only float noise makes (10,000 times smaller) always
is. Oscillators on a 0..100 scale (RSI) use ``TIE * 100``. The tolerance depends on the row's own close only, so a
live decision over a two-row window and a backtest over a year make the very same call.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TIE = 1e-9  # relative to the price: far under half a tick, far over float noise (see above)
OSCILLATOR_TIE = TIE * 100  # on a 0..100 scale (RSI)


def column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=np.float64)


def price_tie(close: np.ndarray) -> np.ndarray:
    """Per row, how close two price-valued indicators must be to count as equal: ``TIE`` of the close."""
    return TIE * np.abs(close)


def side(a: np.ndarray, b, tol=0.0) -> np.ndarray:
    """Per row: +1.0 where ``a > b + tol``, -1.0 where ``a < b - tol``, 0.0 where tied, NaN where either is NaN.
    ``b`` and ``tol`` may be scalars or arrays; ``tol = 0`` is the strict comparison itself."""
    diff = np.asarray(a, dtype=np.float64) - b
    out = np.where(diff > tol, 1.0, np.where(diff < -np.asarray(tol), -1.0, 0.0))
    out[np.isnan(diff)] = np.nan
    return out


def crossed_above(a: np.ndarray, b: np.ndarray, tol=0.0) -> np.ndarray:
    """Row ``i`` is True when ``a`` was below ``b`` at ``i-1`` and is above it at ``i``, by more than ``tol`` each
    time (strict; a tie or a NaN never crosses)."""
    out = np.zeros(len(a), dtype=bool)
    if len(a) < 2:
        return out
    if np.isscalar(tol) and tol == 0:  # the exact (SMA) case, on the optimiser's hot path: plain comparisons
        out[1:] = (a[:-1] < b[:-1]) & (a[1:] > b[1:])
        return out
    s = side(a, b, tol)
    out[1:] = (s[:-1] == -1.0) & (s[1:] == 1.0)
    return out


def crossed_below(a: np.ndarray, b: np.ndarray, tol=0.0) -> np.ndarray:
    return crossed_above(b, a, tol)


def entered_below(x: np.ndarray, level: float, tol=0.0) -> np.ndarray:
    """Row ``i`` is True when ``x`` was at or above ``level`` at ``i-1`` (a tie counts as at) and is below it at
    ``i`` by more than ``tol``."""
    s = side(x, level, tol)
    out = np.zeros(len(s), dtype=bool)
    if len(s) >= 2:
        out[1:] = (s[:-1] >= 0.0) & (s[1:] == -1.0)
    return out


def entered_above(x: np.ndarray, level: float, tol=0.0) -> np.ndarray:
    return entered_below(-np.asarray(x, dtype=np.float64), -level, tol)


def to_signals(buy: np.ndarray, sell: np.ndarray) -> np.ndarray:
    """+1 where ``buy``, -1 where ``sell`` (and not ``buy``), 0 elsewhere, as int8."""
    out = np.zeros(len(buy), dtype=np.int8)
    out[sell] = -1
    out[buy] = 1
    return out
