"""The indicators a feature spec can name: what each computes and how much history a value depends on (pure).

Window indicators (``sma``, ``wma``, ``bbands``, ``stoch``, ``willr``, ``cci``, ``volatility``, ``volume_z``)
are reduced per window (``klinepipe.rolling``), never with running float sums, so a value does not depend
on where the series starts; their warm-up is the window. Recursive ones (TA-Lib's ``ema``, ``dema``,
``tema``, ``rsi``, ``macd``, ``atr``, ``natr``, ``adx``) depend on all history, with weights that decay by
``1 - alpha`` per bar; their warm-up is the window plus the bars after which an old difference has decayed
below 1e-20 of itself (``_decay``), far under a double's precision, so a value computed after the warm-up
is bit-identical to the one computed over the full history (tested for every indicator).

Cumulative indicators with infinite memory (OBV, A/D line) are left out on purpose: their level depends on
where the history starts, so no warm-up makes an incremental value equal a full one.
"""

from __future__ import annotations

import math

import numpy as np
import talib

from klinepipe.feature_specs import Arg, Indicator
from klinepipe.rolling import decimal_units, exact_rolling_mean, rolling_extreme, rolling_mean, rolling_mean_abs_dev, rolling_std, shifted

_WIN = 10_000  # longest window
_REC = 1_000  # longest recursive period: the warm-up grows ~ 46 * period


def _period(default: int | None = None, lo: int = 2, hi: int = _WIN, name: str = "period") -> Arg:
    return Arg(name, int, lo, hi, default)


def _decay(alpha: float) -> int:
    """Bars after which a difference has decayed below 1e-20 of itself: (1 - alpha)^k < 1e-20."""
    return math.ceil(46.0 / -math.log1p(-alpha)) if alpha < 1 else 0


def _ema_warm(n: int) -> int:
    return n + _decay(2.0 / (n + 1))


def _wilder_warm(n: int) -> int:
    return n + 1 + _decay(1.0 / n)


def _nan_if_missing(*arrays) -> bool:
    return any(a is None for a in arrays)


def _close_units(x):
    """``decimal_units`` of the close, found once per series for every exact mean asked of it."""
    if "close_units" not in x:
        x["close_units"] = decimal_units(x["close"])
    return x["close_units"]


def _sma(x, n):
    return (exact_rolling_mean(x["close"], n, _close_units(x)),)


def _wma(x, n):
    weights = np.arange(1, n + 1, dtype=np.float64) / (n * (n + 1) / 2)
    return (rolling_mean(x["close"], n, weights),)


def _bbands(x, n, k):
    mid, sd = exact_rolling_mean(x["close"], n, _close_units(x)), rolling_std(x["close"], n)
    return mid + k * sd, mid, mid - k * sd


def _ret(x, n):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x["close"] / shifted(x["close"], n) - 1.0,)


def _log_ret(x, n):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.log(x["close"] / shifted(x["close"], n)),)


def _volatility(x, n):
    return (rolling_std(_log_ret(x, 1)[0], n),)


def _volume_z(x, n):
    v = x["volume"]
    mean, std = rolling_mean(v, n), rolling_std(v, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (v - mean) / std
    z[std == 0] = 0.0
    return (z,)


def _stoch(x, n, k_smooth, d_smooth):
    hh, ll = rolling_extreme(x["high"], n, np.max), rolling_extreme(x["low"], n, np.min)
    rng = hh - ll
    with np.errstate(divide="ignore", invalid="ignore"):
        fast = np.where(rng > 0, 100.0 * (x["close"] - ll) / rng, 0.0)
    fast[np.isnan(rng)] = np.nan
    slow_k = rolling_mean(fast, k_smooth)
    return slow_k, rolling_mean(slow_k, d_smooth)


def _willr(x, n):
    hh, ll = rolling_extreme(x["high"], n, np.max), rolling_extreme(x["low"], n, np.min)
    rng = hh - ll
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(rng > 0, -100.0 * (hh - x["close"]) / rng, 0.0)
    out[np.isnan(rng)] = np.nan
    return (out,)


def _cci(x, n):
    tp = (x["high"] + x["low"] + x["close"]) / 3.0
    dev = rolling_mean_abs_dev(tp, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(dev > 0, (tp - rolling_mean(tp, n)) / (0.015 * dev), 0.0)
    out[np.isnan(dev)] = np.nan
    return (out,)


def _talib(fn, *names, outputs=1):
    def compute(x, *args):
        arrays = [x[n] for n in names]
        kw = {"timeperiod": args[0]} if len(args) == 1 else {}
        out = fn(*arrays, *(args if not kw else ()), **kw)
        return tuple(out) if outputs > 1 else (out,)
    return compute


def _macd_check(fast, slow, signal):
    return None if fast < slow else f"macd needs fast < slow, got fast={fast} slow={slow}"


def _ind(name, args, outputs, inputs, compute, warmup, doc, check=None) -> Indicator:
    return Indicator(name, tuple(args), tuple(outputs), tuple(inputs), compute, warmup, doc, check)


_CLOSE, _HLC = ("close",), ("high", "low", "close")
INDICATORS: dict[str, Indicator] = {i.name: i for i in (
    _ind("ret", [_period(lo=1, hi=_WIN)], ["ret"], _CLOSE, _ret, lambda n: n + 1, "simple return over n bars"),
    _ind("log_ret", [_period(lo=1, hi=_WIN)], ["log_ret"], _CLOSE, _log_ret, lambda n: n + 1, "log return over n bars"),
    _ind("sma", [_period(lo=1)], ["sma"], _CLOSE, _sma, lambda n: n, "simple moving average of close, exact (see klinepipe.rolling)"),
    _ind("wma", [_period()], ["wma"], _CLOSE, _wma, lambda n: n, "linearly weighted moving average of close"),
    _ind("ema", [_period(hi=_REC)], ["ema"], _CLOSE, _talib(talib.EMA, "close"), _ema_warm, "EMA of close, seeded with the SMA"),
    _ind("dema", [_period(hi=_REC)], ["dema"], _CLOSE, _talib(talib.DEMA, "close"), lambda n: 2 * _ema_warm(n), "double EMA"),
    _ind("tema", [_period(hi=_REC)], ["tema"], _CLOSE, _talib(talib.TEMA, "close"), lambda n: 3 * _ema_warm(n), "triple EMA"),
    _ind("rsi", [_period(hi=_REC)], ["rsi"], _CLOSE, _talib(talib.RSI, "close"), _wilder_warm, "Wilder's RSI"),
    _ind("macd", [_period(12, hi=_REC, name="fast"), _period(26, hi=_REC, name="slow"), _period(9, hi=_REC, name="signal")],
         ["macd", "macd_signal", "macd_hist"], _CLOSE, _talib(talib.MACD, "close", outputs=3),
         lambda f, s, g: _ema_warm(s) + _ema_warm(g), "MACD line, signal line, histogram", _macd_check),
    _ind("bbands", [_period(), Arg("stddev", float, 0.1, 10.0, 2.0)], ["bb_upper", "bb_middle", "bb_lower"], _CLOSE,
         _bbands, lambda n, k: n, "Bollinger bands: SMA +- stddev population standard deviations"),
    _ind("atr", [_period(hi=_REC)], ["atr"], _HLC, _talib(talib.ATR, *_HLC), _wilder_warm, "Wilder's average true range"),
    _ind("natr", [_period(hi=_REC)], ["natr"], _HLC, _talib(talib.NATR, *_HLC), _wilder_warm, "ATR as a percentage of close"),
    _ind("adx", [_period(hi=_REC)], ["adx"], _HLC, _talib(talib.ADX, *_HLC), lambda n: 2 * _wilder_warm(n),
         "Wilder's average directional index"),
    _ind("stoch", [_period(lo=1), _period(3, lo=1, name="k_smooth"), _period(3, lo=1, name="d_smooth")],
         ["stoch_k", "stoch_d"], _HLC, _stoch, lambda n, k, d: n + k + d, "slow stochastic %K and %D (SMA smoothing)"),
    _ind("willr", [_period()], ["willr"], _HLC, _willr, lambda n: n, "Williams' %R"),
    _ind("cci", [_period()], ["cci"], _HLC, _cci, lambda n: n, "commodity channel index (typical price)"),
    _ind("roc", [_period(lo=1)], ["roc"], _CLOSE, lambda x, n: (100.0 * _ret(x, n)[0],), lambda n: n + 1,
         "rate of change in percent"),
    _ind("mom", [_period(lo=1)], ["mom"], _CLOSE, lambda x, n: (x["close"] - shifted(x["close"], n),), lambda n: n + 1,
         "momentum: close minus the close n bars ago"),
    _ind("volatility", [_period()], ["volatility"], _CLOSE, _volatility, lambda n: n + 1,
         "population standard deviation of the 1-bar log return"),
    _ind("volume_z", [_period()], ["volume_z"], ("volume",), _volume_z, lambda n: n,
         "z-score of volume against its n-bar mean and population standard deviation"),
)}


def compute_spec(spec, inputs: dict) -> tuple[np.ndarray, ...]:
    """The outputs of ``spec`` over ``inputs`` (float64 arrays by name; a missing input gives NaN outputs)."""
    length = len(inputs["close"])
    if _nan_if_missing(*(inputs.get(n) for n in spec.indicator.inputs)):
        return tuple(np.full(length, np.nan) for _ in spec.indicator.outputs)
    return tuple(np.asarray(a, dtype=np.float64) for a in spec.indicator.compute(inputs, *spec.args))
