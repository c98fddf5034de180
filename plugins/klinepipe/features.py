"""Features over the closed candles of one series: any feature spec, and the default set (pure: numpy and TA-Lib).

A feature spec is an indicator with its arguments, ``sma(5)``, ``bbands(20, 2.5)``, ``macd(8, 21, 5)``
(``klinepipe.feature_specs``: syntax, validation, column names; ``klinepipe.indicators``: the list and
the math). The default set, stored for every series whatever the strategies ask for, keeps the
columns of feature set v2:

| column | spec | definition |
|---|---|---|
| ``ret_1``, ``log_ret_1`` | ``ret(1)``, ``log_ret(1)`` | close-to-close simple and log return |
| ``sma_10/30/50`` | ``sma(n)`` | simple moving average of close, exact decimal mean correctly rounded |
| ``ema_10/30/50`` | ``ema(n)`` | exponential moving average of close (seeded with the SMA) |
| ``rsi_14`` | ``rsi(14)`` | Wilder's RSI |
| ``macd``, ``macd_signal``, ``macd_hist`` | ``macd(12, 26, 9)`` | MACD |
| ``bb_upper_20``, ``bb_middle_20``, ``bb_lower_20`` | ``bbands(20, 2)`` | Bollinger bands, 2 standard deviations |
| ``atr_14`` | ``atr(14)`` | Wilder's average true range |
| ``volatility_30`` | ``volatility(30)`` | standard deviation of ``log_ret_1`` over 30 bars (population) |
| ``volume_z_30`` | ``volume_z(30)`` | z-score of volume against its 30-bar mean and standard deviation |

A value is NaN (stored as NULL) until its window is full. Each spec knows its warm-up (``spec.warmup``):
the bars of history a value depends on, derived from its arguments; recursive indicators (EMA, RSI,
MACD, ATR, ...) need many more bars than their period, until the effect of older history has decayed
below a double's precision. An incremental run over ``warmup_bars(specs)`` candles before the first new
one therefore gives every value bit for bit as a run over the full history (tested for every indicator).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from klinepipe import feature_specs
from klinepipe.feature_specs import FeatureSpec
from klinepipe.indicators import INDICATORS, compute_spec

DEFAULT_SPEC_TEXTS: tuple[str, ...] = (
    "ret(1)", "log_ret(1)", "sma(10)", "sma(30)", "sma(50)", "ema(10)", "ema(30)", "ema(50)", "rsi(14)",
    "macd(12, 26, 9)", "bbands(20, 2)", "atr(14)", "volatility(30)", "volume_z(30)",
)


def parse_spec(text: str) -> FeatureSpec:
    """``"bbands(20, 2.5)"`` or a column name (``"bb_upper_20_2p5"``) -> its spec; ``ValueError`` listing what is valid."""
    return feature_specs.parse_spec(INDICATORS, text)


def make_spec(name: str, *args) -> FeatureSpec:
    """``make_spec("sma", 5)`` -> ``sma(5)``, validated."""
    return feature_specs.make_spec(INDICATORS, name, *args)


def spec_for_column(column: str) -> FeatureSpec:
    """The spec that produces ``column`` (``"sma_5"`` -> ``sma(5)``); ``ValueError`` when no indicator does."""
    return feature_specs.spec_for_column(INDICATORS, column)[0]


def valid_indicators() -> str:
    """Every indicator with its arguments and their ranges, for error messages and ``--help``."""
    return feature_specs.valid_list(INDICATORS)


DEFAULT_SPECS: tuple[FeatureSpec, ...] = tuple(parse_spec(t) for t in DEFAULT_SPEC_TEXTS)
FEATURE_COLUMNS: tuple[str, ...] = tuple(c for s in DEFAULT_SPECS for c in s.columns)


def spec_columns(specs: Iterable[FeatureSpec]) -> tuple[str, ...]:
    """The columns of ``specs``, in order, each once."""
    return tuple(dict.fromkeys(c for s in specs for c in s.columns))


def union_specs(*groups: Iterable[FeatureSpec]) -> tuple[FeatureSpec, ...]:
    """The specs of every group, in order of first appearance, each once."""
    return tuple(dict.fromkeys(s for group in groups for s in group))


def warmup_bars(specs: Iterable[FeatureSpec]) -> int:
    """The candles before the first new one that an incremental run must load for ``specs``."""
    return max((s.warmup for s in specs), default=1)


WARMUP_BARS = warmup_bars(DEFAULT_SPECS)


def specs_for_columns(columns: Iterable[str]) -> tuple[FeatureSpec, ...]:
    """The specs that produce ``columns`` (``close`` and ``open_time`` are candle columns, not specs)."""
    return union_specs(spec_for_column(c) for c in columns if c not in ("close", "open_time"))


def compute_specs(specs: Iterable[FeatureSpec], close: np.ndarray, high: np.ndarray | None = None,
                  low: np.ndarray | None = None, volume: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every column of ``specs`` over one series (oldest first), one value per candle.

    Missing inputs (high/low, volume) give NaN columns. A column's values do not depend on which other
    specs are asked for, nor on the series' length before the warm-up."""
    inputs = {"close": _f64(close), "high": _opt(high), "low": _opt(low), "volume": _opt(volume)}
    out: dict[str, np.ndarray] = {}
    for spec in union_specs(specs):
        out.update(zip(spec.columns, compute_spec(spec, inputs)))
    return out


def compute_features(close: np.ndarray, high: np.ndarray | None = None, low: np.ndarray | None = None,
                     volume: np.ndarray | None = None, columns: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The default set's columns, or exactly ``columns`` (any spec's column names, e.g. ``"sma_5"``)."""
    want = FEATURE_COLUMNS if columns is None else tuple(dict.fromkeys(columns))
    computed = compute_specs(specs_for_columns(want), close, high, low, volume)
    return {c: computed[c] for c in want}


def compute_feature_frame(candles: pd.DataFrame, columns: Iterable[str] | None = None,
                          specs: Iterable[FeatureSpec] = ()) -> pd.DataFrame:
    """Features for a frame of one series' closed candles (``open_time``, ``close``; ``high``, ``low``,
    ``volume`` if present): the default set's columns, or ``columns``, plus the columns of ``specs``."""
    cols = {c: candles[c].to_numpy(dtype=np.float64) for c in ("close", "high", "low", "volume") if c in candles}
    specs = tuple(specs)
    want = (FEATURE_COLUMNS if columns is None and not specs else tuple(columns or ())) + spec_columns(specs)
    out = pd.DataFrame(compute_features(**cols, columns=want), index=candles.index)
    out.insert(0, "open_time", candles["open_time"].to_numpy())
    return out


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _opt(a) -> np.ndarray | None:
    return None if a is None else _f64(a)
