"""Write a backtest's output directory: ``trades.csv``, ``equity.csv``, ``summary.json``, ``report.html``, ``equity.png``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from trader.backtest.metrics import drawdown
from trader.backtest.runner import BacktestResult

TRADE_COLUMNS = ("entry_time", "exit_time", "side", "qty", "entry_price", "exit_price", "fee", "pnl", "return_pct")


def write_outputs(result: BacktestResult, out_dir: str | Path, *, html: bool = True, png: bool = True) -> Path:
    """Write every output file of ``result`` into ``out_dir`` (created); return the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.trades.loc[:, list(TRADE_COLUMNS)].to_csv(out / "trades.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    equity_frame(result).to_csv(out / "equity.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    (out / "summary.json").write_text(json.dumps(json_safe(result.summary), indent=2) + "\n")
    if html:
        from trader.backtest.report_html import render_html

        (out / "report.html").write_text(render_html(result), encoding="utf-8")
    if png:
        from trader.backtest.report_png import render_equity_png

        (out / "equity.png").write_bytes(render_equity_png(result))
    return out


def equity_frame(result: BacktestResult) -> pd.DataFrame:
    """Equity, drawdown and the held quantity at each candle's close."""
    times = result.candles["open_time"].to_numpy() + int(result.meta.get("interval_ms", 60_000))
    return pd.DataFrame({
        "time": pd.to_datetime(times, unit="ms", utc=True),
        "equity": result.fills.equity,
        "drawdown_pct": 100.0 * drawdown(result.fills.equity),
        "position": result.fills.held,
    })


def json_safe(value):
    """Numbers NumPy made and non-finite floats, made JSON-safe (NaN/inf -> null)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
