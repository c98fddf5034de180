"""Backtests with protection (stop-loss, take-profit, trailing stop): the live trader's bar timeline, walked bar by bar
(pure), long-only spot, so that backtest = paper = exchange trade for trade.

The timeline, as the trader lives it (``trader.loop`` + ``trader.protector`` + the paper broker):
* a signal on candle ``i``'s close is decided with the position as of the fills and stops through candle ``i - 1``;
  no signal is acted on while the sleeve's previous order is still waiting for its fill (the next open);
* an entry fills at the next open; its protection is priced from that fill (stop rounded down to ``tick``, take-profit
  up) -- a percent of it, or a multiple of ``atr_14`` of the entry's decision candle (no atr there: unprotected, as the
  trader records a ``protection_error``) -- and holds from that candle on;
* a stop fills when a candle's low reaches it, at the stop, or at the open when the candle opens beyond it; a
  take-profit when the high reaches it (the level, or a gap open above it); the stop when one candle reaches both;
  a trailing stop at ``trailing_pct`` below the highest price since the entry, by the candle's path open -> low ->
  high -> close: at the open when it opens at or below the trail, at the trail when the low reaches it (the open
  ratchets the trail at once), else at the trail the high ratcheted when the close is at or below it; otherwise the
  high carries into the next candle -- the rule of ``trader.brokers.paper._protection_price``;
* an exit by signal fills at the next open, unless a stop filled first (then it is refused).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trader.backtest.engine import FillModel, Fills, _equity_curve, _quantity

_BPS = 10_000.0


@dataclass(frozen=True)
class StopModel:
    stop_pct: float | None = None
    take_profit_pct: float | None = None
    trailing_pct: float | None = None
    tick: float = 0.0
    stop_atr: float | None = None  # instead of stop_pct: this many atr_14 of the decision candle below the fill
    take_profit_atr: float | None = None  # instead of take_profit_pct

    @property
    def uses_atr(self) -> bool:
        return bool(self.stop_atr or self.take_profit_atr)


def _levels(price: float, stops: StopModel, atr: float | None = None) -> tuple[float | None, float | None]:
    def snap(v: float, up: bool) -> float:
        if not stops.tick:
            return v
        k = v / stops.tick
        return round((math.ceil(k - 1e-9) if up else math.floor(k + 1e-9)) * stops.tick, 10)

    if stops.uses_atr and (atr is None or not atr > 0):
        return None, None  # no atr_14 for the entry's candle: the trader cannot price it either
    stop = snap(price - stops.stop_atr * atr if stops.stop_atr else price * (1 - stops.stop_pct / 100), False) \
        if stops.stop_pct or stops.stop_atr else None
    tp = snap(price + stops.take_profit_atr * atr if stops.take_profit_atr else price * (1 + stops.take_profit_pct / 100), True) \
        if stops.take_profit_pct or stops.take_profit_atr else None
    return stop, tp


def _protection_exit(o: float, h: float, low: float, stop, tp, trail, peak, c: float | None = None) -> float | None:
    if trail:
        keep = 1 - trail / 100
        top = max(peak if peak is not None else o, o)
        if low <= top * keep:
            return min(o, top * keep)
        after_high = max(top, h) * keep
        return after_high if c is not None and c <= after_high else None
    if stop is not None and low <= stop:
        return min(o, stop)
    if tp is not None and h >= tp:
        return max(o, tp)
    return None


def simulate_with_stops(open_, high, low, close, signals, model: FillModel, stops: StopModel, atr=None) -> Fills:
    """Fills of a long-only sleeve with protection; ``Fills`` as ``engine.simulate`` gives them. ``atr``: ``atr_14`` per
    candle, for atr-multiple stops."""
    if stops.uses_atr and atr is None:
        raise ValueError("atr-multiple stops need the candles' atr_14")
    if model.allow_short:
        raise ValueError("protection is for long-only spot")
    sig = np.asarray(signals, dtype=np.int8)
    slip, fee_rate = model.slippage_bps / _BPS, model.fee_bps / _BPS
    cash = model.cash
    trades: list[list] = []  # entry bar, exit bar, qty, p_in, p_out, cash before
    pending: str | None = None
    long = False
    stop = tp = peak = None
    for i in range(len(sig)):
        was_pending = pending
        if pending == "BUY":
            q = _quantity(cash, float(close[i - 1]) if model.size_at == "signal" else float(open_[i]) * (1 + slip), fee_rate, model)
            if q > 0:
                p = float(open_[i]) * (1 + slip)
                trades.append([i, -1, q, p, math.nan, cash])
                long, peak = True, None
                stop, tp = _levels(p, stops, float(atr[i - 1]) if stops.uses_atr else None)
        elif pending == "SELL" and long:
            t = trades[-1]
            t[1], t[4], long = i, float(open_[i]) * (1 - slip), False
            cash += _pnl(t, fee_rate)
        pending = None
        if was_pending is None:  # the trader acts on candle i's signal only with no order of the sleeve open
            if sig[i] > 0 and not long:
                pending = "BUY"
            elif sig[i] < 0 and long:
                pending = "SELL"
        if long:
            out = _protection_exit(float(open_[i]), float(high[i]), float(low[i]), stop, tp, stops.trailing_pct, peak, float(close[i]))
            peak = max(peak if peak is not None else float(open_[i]), float(high[i]))
            if out is not None:
                t = trades[-1]
                t[1], t[4], long = i, out, False
                cash += _pnl(t, fee_rate)
                if pending == "SELL":
                    pending = None  # the stop exited the position first
    return _fills(trades, close, fee_rate, model)


def _pnl(t: list, fee_rate: float) -> float:
    _, _, q, p_in, p_out, _ = t
    return q * (p_out - p_in) - q * p_in * fee_rate - q * p_out * fee_rate


def _fills(trades: list[list], close, fee_rate: float, model: FillModel) -> Fills:
    a = np.array(trades, dtype=float).reshape(-1, 6)
    entries, exits = a[:, 0].astype(np.int64), a[:, 1].astype(np.int64)
    qty, p_in, p_out, cash_before = a[:, 2], a[:, 3], a[:, 4], a[:, 5]
    closed = exits >= 0
    fee = qty * p_in * fee_rate + np.where(closed, qty * np.nan_to_num(p_out) * fee_rate, 0.0)
    pnl = np.where(closed, qty * (np.nan_to_num(p_out) - p_in), 0.0) - fee
    direction = np.ones(len(a), dtype=np.int8)
    # flat from the exit bar's close on: an exit at its open (by signal) or inside it (a stop)
    equity, held = _equity_curve(np.asarray(close, dtype=float), entries, exits, direction, qty, p_in,
                                 fee_rate, cash_before, pnl, model.cash)
    return Fills(entries, exits, direction, qty, p_in, p_out, fee, pnl, equity, held)
