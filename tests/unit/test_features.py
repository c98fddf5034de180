import gzip
import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from klinepipe.features import FEATURE_COLUMNS, WARMUP_BARS, compute_features

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def _ohlcv(n: int = 5000) -> dict[str, np.ndarray]:
    with gzip.open(SAMPLE / "BTCUSDT-1m.csv.gz", "rt") as f:
        rows = list(csv.reader(f))[1 : n + 1]
    return {name: np.array([float(r[j]) for r in rows]) for name, j in (("close", 4), ("high", 2), ("low", 3), ("volume", 5))}


def _closes(n: int = 5000) -> np.ndarray:
    return _ohlcv(n)["close"]


def _ema(x: np.ndarray, n: int) -> np.ndarray:
    """EMA seeded with the SMA of its first n values (starting at the first non-NaN)."""
    out = np.full(len(x), np.nan)
    first = int(np.argmax(~np.isnan(x)))
    out[first + n - 1] = x[first : first + n].mean()
    alpha = 2 / (n + 1)
    for i in range(first + n, len(x)):
        out[i] = alpha * x[i] + (1 - alpha) * out[i - 1]
    return out


def _reference(close: np.ndarray, high: np.ndarray, low: np.ndarray, volume: np.ndarray) -> dict[str, np.ndarray]:
    """Independent definitions with pandas/numpy (textbook formulas, not TA-Lib)."""
    s = pd.Series(close)
    out = {"ret_1": s.pct_change().to_numpy(), "log_ret_1": np.log(s / s.shift()).to_numpy()}
    for n in (10, 30, 50):
        out[f"sma_{n}"] = s.rolling(n).mean().to_numpy()
        out[f"ema_{n}"] = _ema(close, n)
    macd = _ema(close, 12) - _ema(close, 26)
    out["macd"], out["macd_signal"] = macd, _ema(macd, 9)
    out["macd_hist"] = out["macd"] - out["macd_signal"]
    mid, sd = s.rolling(20).mean(), s.rolling(20).std(ddof=0)
    out["bb_upper_20"], out["bb_middle_20"], out["bb_lower_20"] = (mid + 2 * sd).to_numpy(), mid.to_numpy(), (mid - 2 * sd).to_numpy()
    prev = np.concatenate(([np.nan], close[:-1]))
    tr = np.nanmax(np.vstack([high - low, np.abs(high - prev), np.abs(low - prev)]), axis=0)
    atr = np.full(len(close), np.nan)
    atr[14] = tr[1:15].mean()
    for i in range(15, len(close)):
        atr[i] = (atr[i - 1] * 13 + tr[i]) / 14
    out["atr_14"] = atr
    out["volatility_30"] = pd.Series(out["log_ret_1"]).rolling(30).std(ddof=0).to_numpy()
    v = pd.Series(volume)
    out["volume_z_30"] = ((v - v.rolling(30).mean()) / v.rolling(30).std(ddof=0)).to_numpy()
    delta = np.diff(close)
    gain, loss = np.clip(delta, 0, None), np.clip(-delta, 0, None)
    rsi = np.full(len(close), np.nan)
    avg_g, avg_l = gain[:14].mean(), loss[:14].mean()
    rsi[14] = 100 - 100 / (1 + avg_g / avg_l)
    for i in range(15, len(close)):
        avg_g = (avg_g * 13 + gain[i - 1]) / 14
        avg_l = (avg_l * 13 + loss[i - 1]) / 14
        rsi[i] = 100 - 100 / (1 + avg_g / avg_l)
    out["rsi_14"] = rsi
    return out


# MACD's signal line is seeded differently by TA-Lib (it aligns the fast EMA with the slow one); the
# recursive values agree once the seeds have decayed, so those columns are compared after 300 bars.
_CONVERGED_AFTER = {"macd": 300, "macd_signal": 300, "macd_hist": 300}


@pytest.mark.parametrize("column", FEATURE_COLUMNS)
def test_features_match_independent_definitions_on_real_data(column):
    data = _ohlcv()

    got = compute_features(**data)[column]
    want = _reference(**data)[column]

    start = _CONVERGED_AFTER.get(column, 0)
    if not start:
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want[start:])
    np.testing.assert_allclose(got[start:][ok], want[start:][ok], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("start", [1500, 4321, 9950])
def test_incremental_window_is_bit_identical_to_full_history(start):
    data = _ohlcv(10_000)
    full = compute_features(**data)

    window = compute_features(**{k: v[start - WARMUP_BARS :] for k, v in data.items()})

    for column in FEATURE_COLUMNS:
        np.testing.assert_array_equal(window[column][WARMUP_BARS:], full[column][start:], err_msg=column)


def test_values_are_nan_until_the_window_is_full():
    f = compute_features(np.arange(1.0, 41.0))  # close only: range-based columns are NaN

    assert np.isnan(f["sma_30"][28]) and f["sma_30"][29] == pytest.approx(15.5)
    assert np.isnan(f["ret_1"][0]) and f["ret_1"][1] == pytest.approx(1.0)
    assert np.isnan(f["atr_14"]).all() and np.isnan(f["volume_z_30"]).all()


def test_a_column_subset_equals_the_same_columns_of_the_full_set():
    data = _ohlcv(3000)
    full = compute_features(**data)

    subset = compute_features(**data, columns=["sma_10", "sma_30", "macd_hist", "atr_14"])

    assert list(subset) == ["sma_10", "sma_30", "macd_hist", "atr_14"]
    for column, values in subset.items():
        np.testing.assert_array_equal(values, full[column])
    with pytest.raises(ValueError, match="unknown feature"):
        compute_features(**data, columns=["smaa_7"])
