import gzip
import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from klinepipe.features import FEATURE_COLUMNS, WARMUP_BARS, compute_features

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def _closes(n: int = 5000) -> np.ndarray:
    with gzip.open(SAMPLE / "BTCUSDT-1m.csv.gz", "rt") as f:
        rows = list(csv.reader(f))[1 : n + 1]
    return np.array([float(r[4]) for r in rows])


def _reference(close: np.ndarray) -> dict[str, np.ndarray]:
    """Independent definitions with pandas (SMA, EMA seeded with the first SMA, Wilder's RSI)."""
    s = pd.Series(close)
    out = {"ret_1": s.pct_change().to_numpy(), "log_ret_1": np.log(s / s.shift()).to_numpy()}
    for n in (10, 30):
        out[f"sma_{n}"] = s.rolling(n).mean().to_numpy()
        ema = np.full(len(s), np.nan)
        ema[n - 1] = close[:n].mean()
        alpha = 2 / (n + 1)
        for i in range(n, len(s)):
            ema[i] = alpha * close[i] + (1 - alpha) * ema[i - 1]
        out[f"ema_{n}"] = ema
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


@pytest.mark.parametrize("column", FEATURE_COLUMNS)
def test_features_match_independent_definitions_on_real_data(column):
    close = _closes()

    got = compute_features(close)[column]
    want = _reference(close)[column]

    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-9)


def test_incremental_window_equals_full_history():
    close = _closes(3000)
    full = compute_features(close)
    start = len(close) - 50  # the 50 newest candles are "new"

    window = compute_features(close[start - WARMUP_BARS :])

    for column in FEATURE_COLUMNS:
        np.testing.assert_allclose(window[column][WARMUP_BARS:], full[column][start:], rtol=1e-12, atol=0)


def test_values_are_nan_until_the_window_is_full():
    f = compute_features(np.arange(1.0, 41.0))

    assert np.isnan(f["sma_30"][28]) and f["sma_30"][29] == pytest.approx(15.5)
    assert np.isnan(f["ret_1"][0]) and f["ret_1"][1] == pytest.approx(1.0)
