"""Feature set v1 over closed candles of one series (pure: numpy, pandas, TA-Lib).

Columns: ``ret_1`` and ``log_ret_1`` (close-to-close), ``sma_10``/``sma_30`` and ``ema_10``/``ema_30``
(fast/slow), ``rsi_14``. A value is NaN (stored as NULL) until its window is full.

EMA and RSI are recursive, so a value depends on history before its window. Incremental runs load
``WARMUP_BARS`` candles before the first new one; by then the recursive terms have decayed far
below the precision of a double ((1 - 2/31)^1000 < 1e-28), so incremental and full computations agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

FEATURE_COLUMNS: tuple[str, ...] = ("ret_1", "log_ret_1", "sma_10", "sma_30", "ema_10", "ema_30", "rsi_14")
WARMUP_BARS = 1000


def compute_features(close: np.ndarray) -> dict[str, np.ndarray]:
    """Compute every v1 feature over a series of closes (oldest first); one value per close."""
    close = np.ascontiguousarray(close, dtype=np.float64)
    prev = np.concatenate(([np.nan], close[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = close / prev - 1.0
        log_ret = np.log(close / prev)
    return {
        "ret_1": ret,
        "log_ret_1": log_ret,
        "sma_10": talib.SMA(close, timeperiod=10),
        "sma_30": talib.SMA(close, timeperiod=30),
        "ema_10": talib.EMA(close, timeperiod=10),
        "ema_30": talib.EMA(close, timeperiod=30),
        "rsi_14": talib.RSI(close, timeperiod=14),
    }


def compute_feature_frame(candles: pd.DataFrame) -> pd.DataFrame:
    """Features for a frame of one series' closed candles (columns ``open_time``, ``close``)."""
    out = pd.DataFrame(compute_features(candles["close"].to_numpy(dtype=np.float64)), index=candles.index)
    out.insert(0, "open_time", candles["open_time"].to_numpy())
    return out
