"""Vectorised, causal building blocks for strategies (pure numpy): crossings of two series."""

from __future__ import annotations

import numpy as np
import pandas as pd


def column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=np.float64)


def crossed_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row ``i`` is True when ``a[i-1] < b[i-1]`` and ``a[i] > b[i]`` (strict; NaN never crosses)."""
    out = np.zeros(len(a), dtype=bool)
    if len(a) >= 2:
        out[1:] = (a[:-1] < b[:-1]) & (a[1:] > b[1:])
    return out


def crossed_below(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return crossed_above(b, a)


def to_signals(buy: np.ndarray, sell: np.ndarray) -> np.ndarray:
    """+1 where ``buy``, -1 where ``sell`` (and not ``buy``), 0 elsewhere, as int8."""
    out = np.zeros(len(buy), dtype=np.int8)
    out[sell] = -1
    out[buy] = 1
    return out
