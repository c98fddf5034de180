"""Summary statistics of a backtest (pure). Percentages are in percent; ratios are annualised.

Crypto trades all year round, so a year is 365.25 days of bars. Annualised figures (CAGR, Sharpe,
Sortino) of a short backtest extrapolate a few hours or days to a year and mean nothing: below
``MIN_ANNUALISED_DAYS`` of bars they are still computed (sweeps compare them) but flagged, with
``annualised_reliable: false`` and a line in ``warnings`` that the console and the report show. Sharpe and Sortino use per-bar
returns of the equity curve with a zero risk-free rate; Sortino's downside deviation is the root
mean square of the negative returns over all bars.
"""

from __future__ import annotations

import math

import numpy as np

from trader.backtest.engine import Fills

_YEAR_MS = 365.25 * 24 * 3600 * 1000
_DAY_MS = 24 * 3600 * 1000
MIN_ANNUALISED_DAYS = 30
ANNUALISED = ("cagr_pct", "sharpe", "sortino")


def summarise(fills: Fills, open_time: np.ndarray, close: np.ndarray, cash: float, interval_ms: int) -> dict:
    """The numbers of ``summary.json`` (times as ISO strings; undefined ratios as ``None``)."""
    equity = fills.equity
    n = len(equity)
    closed = (fills.exit_bar >= 0) & (fills.qty > 0)
    pnl = fills.pnl[closed]
    final = float(equity[-1]) if n else cash
    years = n * interval_ms / _YEAR_MS
    period_days = n * interval_ms / _DAY_MS
    returns = np.diff(np.concatenate(([cash], equity))) / np.concatenate(([cash], equity[:-1])) if n else np.array([])
    return {
        "start": _iso(open_time[0]) if n else None,
        "end": _iso(open_time[-1] + interval_ms) if n else None,
        "bars": n,
        "trades": int(closed.sum()),
        "open_position": bool(n and fills.held[-1] != 0),
        "initial_equity": cash,
        "final_equity": final,
        "total_return_pct": 100.0 * (final / cash - 1.0),
        "cagr_pct": _cagr(final / cash, years),
        "max_drawdown_pct": 100.0 * float(drawdown(equity).min()) if n else 0.0,
        "sharpe": _ratio(returns, returns, interval_ms),
        "sortino": _ratio(returns, np.minimum(returns, 0.0), interval_ms, rms=True),
        "win_rate_pct": 100.0 * float((pnl > 0).mean()) if len(pnl) else None,
        "profit_factor": _profit_factor(pnl),
        "exposure_pct": 100.0 * float((fills.held != 0).mean()) if n else 0.0,
        "fees_paid": float(fills.fee.sum()),
        "buy_and_hold_return_pct": 100.0 * (float(close[-1]) / float(close[0]) - 1.0) if n else 0.0,
        "period_days": period_days,
        "annualised_reliable": period_days >= MIN_ANNUALISED_DAYS,
        "warnings": [] if period_days >= MIN_ANNUALISED_DAYS else [annualised_warning(period_days)],
    }


def annualised_warning(period_days: float) -> str:
    return (f"CAGR, Sharpe and Sortino are annualised from {format_period(period_days)} of bars, less than the"
            f" {MIN_ANNUALISED_DAYS} days they need to mean anything: do not read them as yearly figures")


def format_period(days: float) -> str:
    """``0.2`` -> ``4.8 h``, ``3.5`` -> ``3.5 d``."""
    return f"{days * 24:.1f} h" if days < 1 else f"{days:.1f} d"


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Fraction below the running peak at every bar (0 or negative)."""
    if len(equity) == 0:
        return equity
    return equity / np.maximum.accumulate(equity) - 1.0


def _ratio(returns: np.ndarray, risk: np.ndarray, interval_ms: int, rms: bool = False) -> float | None:
    if len(returns) < 2:
        return None
    spread = math.sqrt(float(np.mean(risk * risk))) if rms else float(np.std(risk, ddof=1))
    if spread == 0 or not math.isfinite(spread):
        return None
    return _clean(float(np.mean(returns)) / spread * math.sqrt(_YEAR_MS / interval_ms))


def _cagr(growth: float, years: float) -> float | None:
    if years <= 0 or growth <= 0:
        return None
    try:
        return _clean(100.0 * (math.exp(math.log(growth) / years) - 1.0))
    except OverflowError:  # a short, steep run: the annualised figure means nothing
        return None


def _profit_factor(pnl: np.ndarray) -> float | None:
    gains, losses = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    return _clean(gains / losses) if losses > 0 else None


def _clean(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _iso(ms) -> str:
    return np.datetime64(int(ms), "ms").astype(str) + "Z"
