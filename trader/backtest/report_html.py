"""``report.html``: one self-contained page (bokeh with its JavaScript inlined; no CDN, works offline).

Panels share the time axis: candles with entries (green triangles) and exits (red), equity, drawdown.
Long histories are aggregated to at most ``MAX_CANDLES`` candles per page (OHLC of each bucket), and
at most ``MAX_MARKERS`` trades are marked, so a year of 1-minute candles still gives a light page.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from trader.backtest.metrics import drawdown
from trader.backtest.outputs import json_safe
from trader.backtest.present import Row, fill_model_rows, inline, summary_rows, warnings
from trader.backtest.runner import BacktestResult

MAX_CANDLES = 3000
MAX_MARKERS = 2000
MAX_TRADE_ROWS = 200


def render_html(result: BacktestResult) -> str:
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import Div
    from bokeh.resources import INLINE

    price = _price_panel(result)
    eq, dd = _equity_panels(result, price.x_range)
    title = f"klinepipe backtest: {result.meta.get('strategy', '')} {result.meta.get('symbol', '')} {result.meta.get('interval', '')}"
    page = column(Div(text=f"<h2>{html.escape(title)}</h2>{_summary_table(result.summary)}"), price, eq, dd,
                  Div(text=_trades_table(result.trades)), sizing_mode="stretch_width")
    return file_html(page, INLINE, title)


def aggregate_candles(candles: pd.DataFrame, max_rows: int = MAX_CANDLES) -> pd.DataFrame:
    """OHLC of consecutive buckets, so at most ``max_rows`` candles remain."""
    n = len(candles)
    step = max(1, -(-n // max_rows))
    if step == 1:
        return candles
    starts = np.arange(0, n, step)
    ends = np.minimum(starts + step, n) - 1
    return pd.DataFrame({
        "open_time": candles["open_time"].to_numpy()[starts],
        "open": candles["open"].to_numpy()[starts],
        "high": np.maximum.reduceat(candles["high"].to_numpy(), starts),
        "low": np.minimum.reduceat(candles["low"].to_numpy(), starts),
        "close": candles["close"].to_numpy()[ends],
        "step": step,
    })


def _price_panel(result: BacktestResult):
    from bokeh.plotting import figure

    agg = aggregate_candles(result.candles)
    width_ms = 0.8 * int(result.meta.get("interval_ms", 60_000)) * int(agg["step"].iloc[0] if "step" in agg else 1)
    t = pd.to_datetime(agg["open_time"].to_numpy(), unit="ms")
    up = agg["close"].to_numpy() >= agg["open"].to_numpy()
    fig = figure(x_axis_type="datetime", height=360, title="candles, entries and exits", sizing_mode="stretch_width",
                 tools="xpan,xwheel_zoom,box_zoom,reset,save")
    fig.segment(t, agg["high"], t, agg["low"], color="#666666")
    for mask, colour in ((up, "#26a69a"), (~up, "#ef5350")):
        fig.vbar(t[mask], width_ms, agg["open"].to_numpy()[mask], agg["close"].to_numpy()[mask], color=colour)
    trades = result.trades.iloc[:MAX_MARKERS]
    naive = lambda s: s.dt.tz_localize(None)  # noqa: E731 - bokeh wants naive UTC datetimes
    fig.scatter(naive(trades["entry_time"]), trades["entry_price"], marker="triangle", size=9, color="green", legend_label="entry")
    fig.scatter(naive(trades["exit_time"]), trades["exit_price"], marker="inverted_triangle", size=9, color="red", legend_label="exit")
    fig.legend.location = "top_left"
    return fig


def _equity_panels(result: BacktestResult, x_range):
    from bokeh.plotting import figure

    keep = np.unique(np.linspace(0, len(result.fills.equity) - 1, min(len(result.fills.equity), 20_000)).astype(np.int64))
    t = pd.to_datetime(result.candles["open_time"].to_numpy()[keep], unit="ms")
    equity = result.fills.equity
    eq = figure(x_axis_type="datetime", x_range=x_range, height=220, title="equity", sizing_mode="stretch_width")
    eq.line(t, equity[keep], color="#1f77b4")
    dd = figure(x_axis_type="datetime", x_range=x_range, height=160, title="drawdown %", sizing_mode="stretch_width")
    dd.varea(t, 0, 100.0 * drawdown(equity)[keep], color="#d62728", alpha=0.4)
    return eq, dd


def _summary_table(summary: dict) -> str:
    """Summary, strategy params and fill model as three tables (never a Python dict's repr), and the warnings."""
    summary = json_safe(summary)
    style = "style='border-collapse:collapse;margin:0 2em 1em 0;vertical-align:top'"
    flagged = "style='color:#b26a00'"

    def table(title: str, rows) -> str:
        body = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(r.label)}</th>"
                       f"<td style='text-align:right'{' ' + flagged if r.flagged else ''}>{html.escape(r.value)}</td></tr>"
                       for r in rows)
        return f"<table {style}><caption style='text-align:left;font-weight:bold'>{html.escape(title)}</caption>{body}</table>"

    params = [Row(str(k), str(v)) for k, v in (summary.get("params") or {}).items()] or [Row("(defaults)", "–")]
    tables = [table("summary", summary_rows(summary, summary.get("selection") or {})), table("strategy params", params),
              table("fill model", fill_model_rows(summary.get("fill_model")))]
    selection = summary.get("selection")
    if selection:
        tables.append(table("parameter selection", [
            Row("chosen by", f"highest {selection.get('metric')}" + (" (in sample)" if selection.get("in_sample") else "")),
            Row("best params", inline(selection.get("best_params")))]))
    notes = "".join(f"<p {flagged}><strong>{html.escape(w)}</strong></p>" for w in warnings(summary))
    return f"{notes}<div style='display:flex;flex-wrap:wrap;align-items:flex-start'>{''.join(tables)}</div>"


def _trades_table(trades: pd.DataFrame) -> str:
    head = trades.head(MAX_TRADE_ROWS)
    note = f"<p>first {MAX_TRADE_ROWS} of {len(trades)} trades (all in trades.csv)</p>" if len(trades) > MAX_TRADE_ROWS else ""
    return f"<h3>trades</h3>{note}{head.to_html(index=False, float_format=lambda x: f'{x:,.6g}')}"
