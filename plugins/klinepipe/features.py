"""Feature set v2 over the closed candles of one series (pure: numpy and TA-Lib).

| column | definition |
|---|---|
| ``ret_1``, ``log_ret_1`` | close-to-close simple and log return |
| ``sma_10/30/50``, ``ema_10/30/50`` | simple and exponential moving averages of close (EMA seeded with the SMA) |
| ``rsi_14`` | Wilder's RSI |
| ``macd``, ``macd_signal``, ``macd_hist`` | MACD(12, 26, 9) |
| ``bb_upper_20``, ``bb_middle_20``, ``bb_lower_20`` | Bollinger bands, 20 bars, 2 standard deviations |
| ``atr_14`` | Wilder's average true range |
| ``volatility_30`` | standard deviation of ``log_ret_1`` over 30 bars (population) |
| ``volume_z_30`` | z-score of volume against its 30-bar mean and standard deviation |

A value is NaN (stored as NULL) until its window is full. EMA, RSI, MACD and ATR are recursive, so a
value depends on history before its window. Incremental runs load ``WARMUP_BARS`` candles before the
first new one; by then the recursive terms have decayed below a double's precision
((1 - 2/51)^1000 < 1e-17). Window features (SMA, Bollinger, volatility, volume z-score) are reduced
per window rather than with running sums, so they do not depend on where the series starts. Together
that makes every feature bit-identical whether computed incrementally or over the full history (tested).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import talib
from numpy.lib.stride_tricks import sliding_window_view

FEATURE_COLUMNS: tuple[str, ...] = (
    "ret_1", "log_ret_1", "sma_10", "sma_30", "sma_50", "ema_10", "ema_30", "ema_50", "rsi_14",
    "macd", "macd_signal", "macd_hist", "bb_upper_20", "bb_middle_20", "bb_lower_20",
    "atr_14", "volatility_30", "volume_z_30",
)
WARMUP_BARS = 1000


def compute_features(close: np.ndarray, high: np.ndarray | None = None, low: np.ndarray | None = None,
                     volume: np.ndarray | None = None, columns: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Features over one series (oldest first), one value per candle: all of them, or only ``columns``.

    Missing inputs (high/low, volume) give NaN columns. A column's values do not depend on which other
    columns are asked for, so a backtest may compute just what its strategy needs.
    """
    want = set(FEATURE_COLUMNS if columns is None else columns)
    if unknown := want - set(FEATURE_COLUMNS):
        raise ValueError(f"unknown feature column(s) {sorted(unknown)}; known: {', '.join(FEATURE_COLUMNS)}")
    close = _f64(close)
    out: dict[str, np.ndarray] = {}
    for name, (needs, build) in _BUILDERS.items():
        if want & needs:
            out.update(build(close, high, low, volume))
    return {c: out[c] for c in FEATURE_COLUMNS if c in want}


def compute_feature_frame(candles: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Features for a frame of one series' closed candles (``open_time``, ``close``; ``high``, ``low``, ``volume`` if present)."""
    cols = {c: candles[c].to_numpy(dtype=np.float64) for c in ("close", "high", "low", "volume") if c in candles}
    out = pd.DataFrame(compute_features(**cols, columns=columns), index=candles.index)
    out.insert(0, "open_time", candles["open_time"].to_numpy())
    return out


def _returns(close, high, low, volume) -> dict[str, np.ndarray]:
    prev = np.concatenate(([np.nan], close[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = close / prev - 1.0
        log_ret = np.log(close / prev)
    return {"ret_1": ret, "log_ret_1": log_ret, "volatility_30": rolling_std(log_ret, 30)}


def _averages(n: int):
    return lambda close, high, low, volume: {f"sma_{n}": rolling_mean(close, n)}


def _emas(n: int):
    return lambda close, high, low, volume: {f"ema_{n}": talib.EMA(close, timeperiod=n)}


def _macd(close, high, low, volume) -> dict[str, np.ndarray]:
    macd, signal, hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    return {"macd": macd, "macd_signal": signal, "macd_hist": hist}


def _bollinger(close, high, low, volume) -> dict[str, np.ndarray]:
    mid, sd = rolling_mean(close, 20), rolling_std(close, 20)
    return {"bb_upper_20": mid + 2 * sd, "bb_middle_20": mid, "bb_lower_20": mid - 2 * sd}


def _atr(close, high, low, volume) -> dict[str, np.ndarray]:
    if high is None or low is None:
        return {"atr_14": np.full(len(close), np.nan)}
    return {"atr_14": talib.ATR(_f64(high), _f64(low), close, timeperiod=14)}


def _volume_z(close, high, low, volume) -> dict[str, np.ndarray]:
    return {"volume_z_30": _zscore(_f64(volume), 30) if volume is not None else np.full(len(close), np.nan)}


_BUILDERS = {
    "returns": ({"ret_1", "log_ret_1", "volatility_30"}, _returns),
    **{f"sma_{n}": ({f"sma_{n}"}, _averages(n)) for n in (10, 30, 50)},
    **{f"ema_{n}": ({f"ema_{n}"}, _emas(n)) for n in (10, 30, 50)},
    "rsi_14": ({"rsi_14"}, lambda close, *_: {"rsi_14": talib.RSI(close, timeperiod=14)}),
    "macd": ({"macd", "macd_signal", "macd_hist"}, _macd),
    "bollinger": ({"bb_upper_20", "bb_middle_20", "bb_lower_20"}, _bollinger),
    "atr_14": ({"atr_14"}, _atr),
    "volume_z_30": ({"volume_z_30"}, _volume_z),
}


def rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of each full window of ``n``, computed from that window alone (no running sum).

    Running sums (TA-Lib's SMA) carry rounding from wherever the series starts, so an incremental run
    would differ from a full one in the last bits; a per-window reduction is identical for both.
    """
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1 :] = sliding_window_view(x, n).mean(axis=-1)
    return out


def rolling_std(x: np.ndarray, n: int, chunk: int = 16_384) -> np.ndarray:
    """Population standard deviation of each full window of ``n``, from that window alone (chunked)."""
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    windows = sliding_window_view(x, n)
    for start in range(0, len(windows), chunk):
        w = windows[start : start + chunk]
        d = w - w.mean(axis=-1)[:, None]
        out[n - 1 + start : n - 1 + start + len(w)] = np.sqrt(np.einsum("ij,ij->i", d, d) / n)
    return out


def _zscore(x: np.ndarray, n: int) -> np.ndarray:
    mean = rolling_mean(x, n)
    std = rolling_std(x, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x - mean) / std
    z[std == 0] = 0.0
    return z


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)
