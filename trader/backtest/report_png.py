"""``equity.png``: the equity curve over the drawdown, drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from trader.backtest.metrics import drawdown
from trader.backtest.runner import BacktestResult

WIDTH, HEIGHT, MARGIN = 1000, 520, 80
_EQUITY_H, _GAP = 300, 40


def render_equity_png(result: BacktestResult) -> bytes:
    """A PNG of equity (top) and drawdown in percent (bottom), with min/max labels and the date range."""
    equity = result.fills.equity
    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    title = f"{result.meta.get('strategy', '')} {result.meta.get('params', '')}  return {result.summary['total_return_pct']:.2f}%"
    draw.text((MARGIN, 10), title, fill="black", font=font)
    if len(equity):
        top = (MARGIN, 40, WIDTH - 20, 40 + _EQUITY_H)
        bottom = (MARGIN, top[3] + _GAP, WIDTH - 20, HEIGHT - 40)
        _plot(draw, font, top, equity, "#1f77b4", "equity")
        _plot(draw, font, bottom, 100.0 * drawdown(equity), "#d62728", "drawdown %")
        draw.text((MARGIN, HEIGHT - 25), f"{result.summary['start']}  ->  {result.summary['end']}", fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _plot(draw: ImageDraw.ImageDraw, font, box: tuple[int, int, int, int], y: np.ndarray, colour: str, label: str) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline="#999999")
    xs, ys = _downsample(y, x1 - x0)
    lo, hi = float(np.min(ys)), float(np.max(ys))
    span = hi - lo or 1.0
    px = x0 + xs * (x1 - x0) / max(len(y) - 1, 1)
    py = y1 - (ys - lo) / span * (y1 - y0)
    draw.line(list(zip(px.tolist(), py.tolist())), fill=colour, width=2)
    draw.text((4, y0), f"{hi:,.2f}", fill="black", font=font)
    draw.text((4, y1 - 12), f"{lo:,.2f}", fill="black", font=font)
    draw.text((x1 - 90, y0 + 4), label, fill=colour, font=font)


def _downsample(y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each pixel column, so spikes survive downsampling."""
    n = len(y)
    if n <= 2 * width:
        return np.arange(n, dtype=float), y.astype(float)
    edges = np.linspace(0, n, width + 1).astype(np.int64)
    lo, hi = np.minimum.reduceat(y, edges[:-1]), np.maximum.reduceat(y, edges[:-1])
    xs = np.repeat(edges[:-1].astype(float), 2)
    ys = np.column_stack((lo, hi)).ravel()
    return xs, ys
