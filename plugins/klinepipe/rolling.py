"""Rolling-window reductions that do not depend on where a series starts (pure numpy).

Each window is reduced from its own values (no running float sums, which carry rounding from wherever the
series starts), so an incremental run gives the very bits of a full one.

``exact_rolling_mean`` goes further for decimal prices: the candles' closes are decimals (Binance sends at
most 8 places), so the mean of a window is a rational number that exact decimal arithmetic knows. The
function returns that number correctly rounded to a double: the prices are recovered as integers
``K / 10**d`` (``decimal_units``), summed exactly in int64, and divided once (IEEE division of two exact
integers is correctly rounded). Two consequences:

* where exact arithmetic says two means are equal, their doubles are equal (the same rational rounds to
  the same double), so a strict cross test does not fire on float noise;
* where exact arithmetic says ``a < b``, ``fl(a) <= fl(b)`` (rounding is monotone); the two means differ
  by at least ``tick / (n_a * n_b)``, far more than one ulp for any real price, so ``fl(a) < fl(b)``.

The result does not depend on ``d`` or on the window's position, only on the exact value, so it is
bit-identical incrementally and in full. Values that are not such decimals (more than 8 places, NaN,
huge) fall back to the per-window float mean.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAX_DECIMALS = 8
_EXACT = 2**53  # integers below this are exact in a double
_CHUNK = 16_384


def decimal_units(x: np.ndarray) -> tuple[np.ndarray, int] | None:
    """``(K, d)`` with ``x == K / 10**d`` for every value (``d`` the smallest such, at most 8), else ``None``.

    A double read from a decimal string (or from PostgreSQL ``numeric::float8``) is the double nearest that
    decimal, and ``K / 10**d`` in floating point is the double nearest ``K / 10**d``, so the test is exact."""
    if len(x) == 0 or not np.isfinite(x).all():
        return None
    probe = np.concatenate((x[:256], x[:: max(len(x) // 1024, 1)], x[-256:]))  # most d fail on a sample: try it first
    for d in range(MAX_DECIMALS + 1):
        scale = 10.0**d
        if not np.array_equal(np.rint(probe * scale) / scale, probe):
            continue
        k = np.rint(x * scale)
        if np.abs(k).max() >= _EXACT:
            return None
        if np.array_equal(k / scale, x):
            return k.astype(np.int64), d
    return None


_UNSET = object()


def exact_rolling_mean(x: np.ndarray, n: int, units=_UNSET) -> np.ndarray:
    """The exact mean of each full window of ``n`` decimals, correctly rounded (see the module doc).

    ``units``: ``decimal_units(x)`` when the caller has it already (several means of one series)."""
    found = (decimal_units(x) if units is _UNSET else units) if len(x) >= n else None
    if found is None:
        return rolling_mean(x, n)
    units, d = found
    out = np.full(len(x), np.nan)
    den = n * 10**d
    peak = int(np.abs(units).max())
    if peak * len(units) < 2**62 and peak * n < _EXACT and den < _EXACT:
        sums = np.concatenate(([0], np.cumsum(units)))
        out[n - 1:] = (sums[n:] - sums[:-n]).astype(np.float64) / float(den)
    else:  # Python integers: exact at any size; int / int is correctly rounded too
        sums = np.concatenate(([0], np.cumsum(units.astype(object))))
        out[n - 1:] = [int(s) / den for s in sums[n:] - sums[:-n]]
    return out


def rolling_mean(x: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean (or ``weights``-weighted sum) of each full window of ``n``, from that window alone; NaN inside a
    window gives NaN."""
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        windows = sliding_window_view(x, n)
        out[n - 1:] = windows.mean(axis=-1) if weights is None else windows @ weights
    return out


def rolling_std(x: np.ndarray, n: int) -> np.ndarray:
    """Population standard deviation of each full window of ``n``, from that window alone (chunked)."""
    return _chunked(x, n, lambda d: np.sqrt(np.einsum("ij,ij->i", d, d) / n))


def rolling_mean_abs_dev(x: np.ndarray, n: int) -> np.ndarray:
    """Mean absolute deviation from the window's mean, per full window of ``n``."""
    return _chunked(x, n, lambda d: np.abs(d).mean(axis=-1))


def rolling_extreme(x: np.ndarray, n: int, reduce) -> np.ndarray:
    """``reduce`` (``np.max`` / ``np.min``) of each full window of ``n``."""
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1:] = reduce(sliding_window_view(x, n), axis=-1)
    return out


def shifted(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` moved ``n`` bars later, NaN in front: ``shifted(x, 1)[i] == x[i - 1]``."""
    return np.concatenate((np.full(min(n, len(x)), np.nan), x[: max(len(x) - n, 0)]))


def _chunked(x: np.ndarray, n: int, reduce_deviations) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    windows = sliding_window_view(x, n)
    for start in range(0, len(windows), _CHUNK):
        w = windows[start : start + _CHUNK]
        out[n - 1 + start : n - 1 + start + len(w)] = reduce_deviations(w - w.mean(axis=-1)[:, None])
    return out
