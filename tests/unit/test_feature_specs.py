"""Feature specs: text form, validation, column names, warm-up, and incremental == full for every indicator."""

import csv
import gzip
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib

from klinepipe.features import (DEFAULT_SPECS, FEATURE_COLUMNS, compute_specs, make_spec, parse_spec, spec_for_column,
                                warmup_bars)
from klinepipe.indicators import INDICATORS
from klinepipe.rolling import decimal_units, exact_rolling_mean

DATA = Path(__file__).resolve().parents[2] / "data" / "sample"
V2_COLUMNS = ("ret_1", "log_ret_1", "sma_10", "sma_30", "sma_50", "ema_10", "ema_30", "ema_50", "rsi_14", "macd",
              "macd_signal", "macd_hist", "bb_upper_20", "bb_middle_20", "bb_lower_20", "atr_14", "volatility_30",
              "volume_z_30")

# one or two argument sets of every indicator, defaults and non-defaults
SPECS = ["ret(1)", "ret(5)", "log_ret(3)", "sma(1)", "sma(5)", "sma(200)", "wma(9)", "ema(21)", "ema(200)", "dema(10)",
         "tema(10)", "rsi(7)", "macd()", "macd(8, 21, 5)", "bbands(20, 2.5)", "bbands(5)", "atr(10)", "natr(14)",
         "adx(14)", "stoch(14)", "stoch(5, 1, 2)", "willr(14)", "cci(20)", "roc(10)", "mom(4)", "volatility(10)",
         "volume_z(60)"]


def _ohlcv(path: Path = DATA / "BTCUSDT-1m.csv.gz", n: int = 12_000) -> dict[str, np.ndarray]:
    with gzip.open(path, "rt") as f:
        rows = list(csv.reader(f))[1 : n + 1]
    return {name: np.array([float(r[j]) for r in rows]) for name, j in (("close", 4), ("high", 2), ("low", 3), ("volume", 5))}


def test_the_default_set_keeps_the_v2_column_names():
    assert FEATURE_COLUMNS == V2_COLUMNS
    assert [s.text for s in DEFAULT_SPECS][-5:] == ["macd(12, 26, 9)", "bbands(20, 2)", "atr(14)", "volatility(30)",
                                                   "volume_z(30)"]


@pytest.mark.parametrize("text, columns", [
    ("sma(5)", ("sma_5",)),
    ("ema(21)", ("ema_21",)),
    ("rsi(7)", ("rsi_7",)),
    ("bbands(20, 2.5)", ("bb_upper_20_2p5", "bb_middle_20_2p5", "bb_lower_20_2p5")),
    ("bbands(20,2.0)", ("bb_upper_20", "bb_middle_20", "bb_lower_20")),
    ("bbands(20, 0.25)", ("bb_upper_20_0p25", "bb_middle_20_0p25", "bb_lower_20_0p25")),
    ("macd(8, 21, 5)", ("macd_8_21_5", "macd_signal_8_21_5", "macd_hist_8_21_5")),
    ("macd(12, 26, 5)", ("macd_12_26_5", "macd_signal_12_26_5", "macd_hist_12_26_5")),
    ("macd(8)", ("macd_8", "macd_signal_8", "macd_hist_8")),
    ("macd", ("macd", "macd_signal", "macd_hist")),
    ("stoch(14, 3, 3)", ("stoch_k_14", "stoch_d_14")),
    ("atr(10)", ("atr_10",)),
])
def test_column_names_follow_one_rule(text, columns):
    assert parse_spec(text).columns == columns


@pytest.mark.parametrize("text", SPECS)
def test_every_column_name_and_text_form_lead_back_to_its_one_spec(text):
    spec = parse_spec(text)

    assert parse_spec(spec.text) == spec
    for column in spec.columns:
        assert spec_for_column(column) == spec and parse_spec(column) == spec


@pytest.mark.parametrize("text, message", [
    ("smaa(5)", "unknown indicator 'smaa'; valid: ret(period: int 1..10000); "),
    ("sma(0)", "sma: period must be in 1..10000, got 0"),
    ("sma(2.5)", "sma: period must be an integer"),
    ("macd(26, 12)", "macd needs fast < slow, got fast=26 slow=12"),
    ("bbands(20, 2.12345)", "bbands: stddev takes at most 4 decimals"),
    ("bbands()", "bbands needs period: bbands(period: int 2..10000, stddev: float 0.1..10 = 2)"),
    ("sma(5, 3)", "sma takes at most 1 argument(s)"),
    ("sma(five)", "'five' is not a number"),
    ("sma_05", "unknown feature 'sma_05'"),
    ("ema(5", "must look like name(arg, ...)"),
])
def test_an_invalid_spec_is_refused_with_what_is_valid(text, message):
    with pytest.raises(ValueError) as err:
        parse_spec(text)

    assert message in str(err.value) and "\n" not in str(err.value)


def test_recursive_indicators_need_more_warm_up_the_longer_they_remember():
    assert make_spec("sma", 50).warmup == 50
    assert make_spec("ema", 10).warmup < make_spec("ema", 50).warmup < make_spec("ema", 200).warmup
    assert make_spec("ema", 50).warmup > 1000  # (1 - 2/51)^k < 1e-20
    assert warmup_bars(DEFAULT_SPECS) == max(s.warmup for s in DEFAULT_SPECS)


@pytest.mark.parametrize("text", SPECS)
def test_incremental_window_is_bit_identical_to_full_history_for_every_spec(text):
    spec = parse_spec(text)
    data = _ohlcv(n=spec.warmup + 6_000)
    full = compute_specs([spec], **data)
    for start in (spec.warmup + 1, spec.warmup + 2_345, len(data["close"]) - 7):
        window = compute_specs([spec], **{k: v[start - spec.warmup :] for k, v in data.items()})
        for column in spec.columns:
            assert not np.isnan(full[column][start:]).all()
            np.testing.assert_array_equal(window[column][spec.warmup :], full[column][start:], err_msg=column)


@pytest.mark.parametrize("text, reference", [
    ("wma(9)", lambda d: talib.WMA(d["close"], 9)),
    ("stoch(14)", lambda d: talib.STOCH(d["high"], d["low"], d["close"], 14, 3, 0, 3, 0)[0]),
    ("willr(14)", lambda d: talib.WILLR(d["high"], d["low"], d["close"], 14)),
    ("cci(20)", lambda d: talib.CCI(d["high"], d["low"], d["close"], 20)),
    ("roc(10)", lambda d: talib.ROC(d["close"], 10)),
    ("mom(4)", lambda d: talib.MOM(d["close"], 4)),
    ("sma(200)", lambda d: pd.Series(d["close"]).rolling(200).mean().to_numpy()),
])
def test_own_window_indicators_agree_with_ta_lib(text, reference):
    data = _ohlcv(n=3000)

    got = compute_specs([parse_spec(text)], **data)[parse_spec(text).columns[0]]
    want = reference(data)

    ok = ~np.isnan(want)  # TA-Lib's STOCH starts %K where %D starts; everywhere else the NaNs are the same
    assert ok.sum() > 2700 and not np.isnan(got[ok]).any() and (text.startswith("stoch") or (np.isnan(got) == ~ok).all())
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-9, atol=1e-9)  # TA-Lib sums run: -2e-13 where the exact value is 0


def test_the_sma_is_the_exact_decimal_mean_correctly_rounded():
    with gzip.open(DATA / "futures_um" / "LINKUSDT-1m.csv.gz", "rt") as f:
        closes = [r[4] for r in list(csv.reader(f))[1:3001]]
    x = np.array([float(c) for c in closes])

    got = exact_rolling_mean(x, 30)

    exact = [Fraction(c) for c in closes]
    want = [float(sum(exact[i - 29 : i + 1]) / 30) for i in range(29, len(exact))]  # Fraction -> float rounds correctly
    assert got[29:].tolist() == want
    assert decimal_units(x)[1] == 3 and decimal_units(np.array([0.1, np.nan])) is None


def test_specs_of_the_registry_are_all_covered_by_the_tests():
    assert {parse_spec(t).name for t in SPECS} == set(INDICATORS)
