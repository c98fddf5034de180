"""The backtest core (pure, vectorised): signals -> positions -> fills -> trades and an equity curve.

Fill model, the same as the paper broker's:

- A signal is taken on a candle's close and fills at the **next candle's open**; a signal on the last
  candle never fills. Slippage moves the fill price against us by ``slippage_bps``.
- The fee is ``fee_bps`` of the notional on each side, paid in the quote asset.
- Long-only spot by default: BUY opens a long when flat, SELL closes it; other signals change nothing.
  With ``allow_short``, SELL when flat opens a short and an opposite signal flips the position.
- An entry spends ``size`` (a fraction) of the equity at that moment, fee included; or, when
  ``order_quote`` is set, that quote amount (capped by what the cash can pay with the fee), as the
  live trader's per-sleeve allocation. ``qty_step`` rounds quantities down. ``size_at="fill"`` sizes
  with the fill price; ``size_at="signal"`` with the decision candle's close, which is all a live
  trader knows when it places the order (the paper and live brokers do this).

Positions follow from the signals alone, so they are computed for every bar at once; money is then
walked once per *trade* (not per bar), and the equity curve is assembled with ``np.repeat``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

_BPS = 10_000.0


@dataclass(frozen=True)
class FillModel:
    fee_bps: float = 10.0
    slippage_bps: float = 0.0
    size: float = 1.0
    cash: float = 10_000.0
    allow_short: bool = False
    order_quote: float | None = None
    qty_step: float | None = None
    size_at: str = "fill"  # or "signal": quantity from the decision candle's close
    stops: object | None = None  # a ``trader.backtest.stops.StopModel``: protection exits by the bar rule (long-only)

    def __post_init__(self) -> None:
        if self.size_at not in ("fill", "signal"):
            raise ValueError(f"size_at must be 'fill' or 'signal', got {self.size_at!r}")
        if not 0 < self.size <= 1:
            raise ValueError(f"size must be a fraction of equity in (0, 1], got {self.size}")
        if self.fee_bps < 0 or self.slippage_bps < 0 or self.cash <= 0:
            raise ValueError("fee_bps and slippage_bps must be >= 0 and cash > 0")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Fills:
    """Per-trade arrays (one entry per round trip); ``exit_bar == -1`` marks a position still open."""

    entry_bar: np.ndarray
    exit_bar: np.ndarray
    direction: np.ndarray
    qty: np.ndarray
    entry_price: np.ndarray
    exit_price: np.ndarray
    fee: np.ndarray
    pnl: np.ndarray
    equity: np.ndarray  # mark-to-market at every bar's close
    held: np.ndarray  # signed quantity held at every bar's close


def target_positions(signals: np.ndarray, allow_short: bool = False) -> np.ndarray:
    """The position wanted after each bar's close: the last non-zero signal so far (long-only: no shorts)."""
    sig = np.asarray(signals, dtype=np.int8)
    marks = np.where(sig != 0, np.arange(len(sig)), -1)
    last = np.maximum.accumulate(marks) if len(sig) else marks
    target = np.where(last >= 0, sig[np.maximum(last, 0)], 0).astype(np.int8)
    return target if allow_short else np.maximum(target, 0)


def round_trips(target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entry bars, exit bars (-1: still open) and directions of the position held from each bar's open."""
    held = np.concatenate(([0], target[:-1])).astype(np.int8) if len(target) else target
    change = np.flatnonzero(np.diff(np.concatenate(([0], held))) != 0)
    entries = change[held[change] != 0]
    bounds = np.concatenate((change, [-1]))
    exits = bounds[np.searchsorted(change, entries) + 1]
    return entries, exits, held[entries].astype(np.int8)


def simulate(open_: np.ndarray, close: np.ndarray, signals: np.ndarray, model: FillModel) -> Fills:
    """Fill every signal at the next open and mark the account to market at every close."""
    entries, exits, direction = round_trips(target_positions(signals, model.allow_short))
    slip, fee_rate = model.slippage_bps / _BPS, model.fee_bps / _BPS
    p_in = open_[entries] * (1 + direction * slip)
    p_out = np.where(exits >= 0, open_[exits] * (1 - direction * slip), np.nan)
    sizing_price = p_in if model.size_at == "fill" else close[np.maximum(entries - 1, 0)]
    qty, fee, pnl, cash_before = _walk_money(p_in, p_out, sizing_price, direction, fee_rate, model)
    equity, held = _equity_curve(close, entries, exits, direction, qty, p_in, fee_rate, cash_before, pnl, model.cash)
    return Fills(entries, exits, direction, qty, p_in, p_out, fee, pnl, equity, held)


def _walk_money(p_in, p_out, sizing_price, direction, fee_rate: float, model: FillModel):
    """Size each trade from the cash left by the previous ones.

    Sizing by a fraction of equity makes every closed trade multiply the cash by a known factor, so
    the walk is one ``cumprod``; a fixed quote amount or a quantity step needs a loop over trades.
    """
    if model.order_quote is not None or model.qty_step or model.size_at != "fill":
        return _walk_money_loop(p_in, p_out, sizing_price, direction, fee_rate, model)
    closed = ~np.isnan(p_out)
    out = np.where(closed, p_out, p_in)
    growth = np.where(closed, model.size * (direction * (out - p_in) - fee_rate * (p_in + out)) / (p_in * (1 + fee_rate)), 0.0)
    cash_before = model.cash * np.concatenate(([1.0], np.cumprod(1.0 + growth)[:-1]))
    qty = model.size * cash_before / (p_in * (1 + fee_rate))
    f_in, f_out = qty * p_in * fee_rate, np.where(closed, qty * out * fee_rate, 0.0)
    pnl = np.where(closed, direction * qty * (out - p_in), 0.0) - f_in - f_out
    return qty, f_in + f_out, pnl, cash_before


def _walk_money_loop(p_in, p_out, sizing_price, direction, fee_rate: float, model: FillModel):
    n = len(p_in)
    qty, fee, pnl, cash_before = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    cash = model.cash
    for k in range(n):
        cash_before[k] = cash
        q = _quantity(cash, float(sizing_price[k]), fee_rate, model)
        if q <= 0:
            continue
        out = float(p_out[k])
        f_in = q * p_in[k] * fee_rate
        f_out = q * out * fee_rate if not math.isnan(out) else 0.0
        qty[k], fee[k] = q, f_in + f_out
        pnl[k] = direction[k] * q * (out - p_in[k]) - f_in - f_out if not math.isnan(out) else -f_in
        cash += pnl[k] if not math.isnan(out) else 0.0
    return qty, fee, pnl, cash_before


def _quantity(cash: float, price: float, fee_rate: float, model: FillModel) -> float:
    """Quantity bought with ``size`` of the cash, or ``order_quote`` capped by the cash, the fee kept aside."""
    if cash <= 0:
        return 0.0
    budget = cash / (1 + fee_rate)
    q = (model.size * budget if model.order_quote is None else min(model.order_quote, budget)) / price
    if model.qty_step:
        q = math.floor(q / model.qty_step + 1e-9) * model.qty_step
    return q


def _equity_curve(close, entries, exits, direction, qty, p_in, fee_rate, cash_before, pnl, cash0):
    """Equity at each close: cash when flat; cash - entry fee + signed qty * (close - entry) when in a trade."""
    n = len(close)
    ends = np.where(exits >= 0, exits, n)
    bounds = np.empty(2 * len(entries) + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, n
    bounds[1:-1:2], bounds[2:-1:2] = entries, ends
    lengths = np.diff(bounds)
    signed = direction * qty
    flat_cash = np.concatenate((cash_before, [cash_before[-1] + pnl[-1]])) if len(entries) else np.array([cash0])
    base = np.empty(len(lengths))
    base[0::2] = flat_cash
    base[1::2] = cash_before - qty * p_in * fee_rate
    seg_qty = np.zeros(len(lengths))
    seg_qty[1::2] = signed
    seg_ref = np.zeros(len(lengths))
    seg_ref[1::2] = p_in
    held = np.repeat(seg_qty, lengths)
    equity = np.repeat(base, lengths) + held * (close - np.repeat(seg_ref, lengths))
    return equity, held


def trades_frame(fills: Fills, open_time: np.ndarray) -> pd.DataFrame:
    """Closed round trips as the ``trades.csv`` table (times as UTC timestamps, return in percent)."""
    closed = (fills.exit_bar >= 0) & (fills.qty > 0)
    e, x = fills.entry_bar[closed], fills.exit_bar[closed]
    qty, p_in = fills.qty[closed], fills.entry_price[closed]
    return pd.DataFrame({
        "entry_time": pd.to_datetime(open_time[e], unit="ms", utc=True),
        "exit_time": pd.to_datetime(open_time[x], unit="ms", utc=True),
        "side": np.where(fills.direction[closed] > 0, "LONG", "SHORT"),
        "qty": qty,
        "entry_price": p_in,
        "exit_price": fills.exit_price[closed],
        "fee": fills.fee[closed],
        "pnl": fills.pnl[closed],
        "return_pct": 100.0 * fills.pnl[closed] / (qty * p_in),
    })
