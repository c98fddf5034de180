"""One backtest: candles -> the DAG's features -> the live strategy's signals -> fills -> metrics (pure).

Features come from ``klinepipe.features.compute_feature_frame``, the code the features DAG runs, and
the strategy is the class the live trader runs: its ``signals`` is called once over the whole
history. The frame handed to the strategy has the columns of the live feature rows it would read
from ``market.features``: ``open_time`` (UTC), ``close`` and every feature column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from collections.abc import Iterable

from klinepipe.feature_specs import FeatureSpec
from klinepipe.features import compute_feature_frame
from trader.backtest.candles import infer_interval_ms
from trader.backtest.engine import Fills, FillModel, simulate, trades_frame
from trader.backtest.metrics import summarise
from trader.strategies import build_strategy
from trader.strategies.base import Strategy


@dataclass
class BacktestResult:
    candles: pd.DataFrame
    signals: np.ndarray
    fills: Fills
    summary: dict
    meta: dict = field(default_factory=dict)

    @property
    def trades(self) -> pd.DataFrame:
        return trades_frame(self.fills, self.candles["open_time"].to_numpy())


def feature_frame(candles: pd.DataFrame, strategy: Strategy | None = None,
                  specs: Iterable[FeatureSpec] | None = None) -> pd.DataFrame:
    """The strategy's input: what the live trader reads from ``market.features`` for these candles.

    With a ``strategy`` (or ``specs``), only the feature specs it declares are computed, whatever their
    parameters: the very function the features DAG runs, and each column's values do not depend on the
    others, so the result is the same as the stored one. Without either, the default set.
    """
    if strategy is not None:
        specs = strategy.feature_specs()
    frame = compute_feature_frame(candles) if specs is None else compute_feature_frame(candles, columns=(), specs=specs)
    frame.insert(1, "close", candles["close"].to_numpy())
    frame["open_time"] = pd.to_datetime(candles["open_time"].to_numpy(), unit="ms", utc=True)
    return frame


def strategy_signals(strategy: Strategy, frame: pd.DataFrame) -> np.ndarray:
    """``strategy.signals`` over the whole frame, checked: one of -1/0/+1 per row.

    A strategy asking for a column the frame lacks (``sma_5`` when the frame was computed for other specs) is
    told so by name, with the columns the frame has, instead of failing with a bare ``KeyError: 'sma_5'``."""
    missing = [c for c in strategy.required_features if c not in frame.columns]
    if missing:
        params = ", ".join(f"{k}={v}" for k, v in strategy.params.items())
        raise ValueError(f"{strategy.name} ({params}) needs {', '.join(missing)}, which this feature frame lacks"
                         f" (it has {', '.join(c for c in frame.columns if c != 'open_time')})")
    out = np.asarray(strategy.signals(frame))
    if out.shape != (len(frame),):
        raise ValueError(f"{strategy.name}.signals returned shape {out.shape} for {len(frame)} rows")
    if len(out) and (out.min() < -1 or out.max() > 1):
        raise ValueError(f"{strategy.name}.signals returned values outside -1/0/+1")
    return out.astype(np.int8, copy=False)


def run_backtest(candles: pd.DataFrame, strategy: Strategy | str, model: FillModel | None = None, *,
                 interval_ms: int | None = None, frame: pd.DataFrame | None = None, meta: dict | None = None) -> BacktestResult:
    """Backtest ``strategy`` (an instance or a registry name with default params) over ``candles``."""
    strategy = build_strategy(strategy) if isinstance(strategy, str) else strategy
    model = model or FillModel()
    frame = feature_frame(candles, strategy) if frame is None else frame
    signals = strategy_signals(strategy, frame)
    return run_signals(candles, signals, model, interval_ms=interval_ms,
                       meta={"strategy": strategy.name, "params": dict(strategy.params), **(meta or {})})


def run_signals(candles: pd.DataFrame, signals: np.ndarray, model: FillModel, *, interval_ms: int | None = None,
                meta: dict | None = None) -> BacktestResult:
    """Fills and metrics for given signals (used directly by sweeps and walk-forward windows)."""
    interval_ms = interval_ms or infer_interval_ms(candles)
    open_, close = candles["open"].to_numpy(), candles["close"].to_numpy()
    if model.stops is not None:  # stop-loss / take-profit / trailing stop, by the live trader's bar rule
        from trader.backtest.stops import simulate_with_stops

        atr = None
        if model.stops.uses_atr:  # the entry candle's atr_14, as the trader reads it from market.features
            from klinepipe.features import parse_spec

            atr = feature_frame(candles, specs=(parse_spec("atr_14"),))["atr_14"].to_numpy(dtype=float)
        fills = simulate_with_stops(open_, candles["high"].to_numpy(), candles["low"].to_numpy(), close, signals, model,
                                    model.stops, atr)
    else:
        fills = simulate(open_, close, signals, model)
    summary = summarise(fills, candles["open_time"].to_numpy(), close, model.cash, interval_ms)
    meta = {**(meta or {}), "fill_model": model.as_dict(), "interval_ms": interval_ms}
    return BacktestResult(candles, signals, fills, {**summary, **meta}, meta)
