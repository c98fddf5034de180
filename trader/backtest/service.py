"""A configured backtest, end to end: load candles, run (single, sweep or walk-forward), write the outputs.

The CLI (``python -m trader backtest``) and the backtest DAG both build a ``BacktestRequest`` and call
``execute``; what it returns is small and JSON-safe (paths and the summary), fit for an XCom.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from trader.backtest.candles import infer_interval_ms, read_kline_file, series_from_name, slice_candles
from trader.backtest.engine import FillModel
from trader.backtest.outputs import json_safe, write_outputs
from trader.backtest.runner import feature_frame, run_backtest
from trader.strategies import build_strategy


@dataclass(frozen=True)
class BacktestRequest:
    out_dir: Path
    strategy: str = "sma_cross"
    params: dict = field(default_factory=dict)
    model: FillModel = field(default_factory=FillModel)
    csv: Path | None = None
    database_url: str | None = None
    symbol: str = ""
    interval: str = ""
    start: datetime | None = None
    end: datetime | None = None
    sweep: dict[str, list] | None = None
    walk_forward: int = 0
    metric: str = "sharpe"
    workers: int | None = None
    html: bool = True
    png: bool = True


def load_candles(req: BacktestRequest) -> tuple[pd.DataFrame, str, str]:
    """The request's candles and their series (from the file name when reading a CSV)."""
    if req.csv is not None:
        symbol, interval = series_from_name(req.csv)
        candles = slice_candles(read_kline_file(req.csv), req.start, req.end)
        return candles, req.symbol or symbol, req.interval or interval
    if not (req.database_url and req.symbol and req.interval):
        raise ValueError("give a kline CSV, or a database URL with a symbol and an interval")
    from trader.backtest.db_source import load_candles_db

    return load_candles_db(req.database_url, req.symbol, req.interval, req.start, req.end), req.symbol.upper(), req.interval


Progress = Callable[[str, int, int], None]  # (step, done, total): the CLI draws it, the DAG ignores it


def _no_progress(step: str, done: int, total: int) -> None:
    pass


def execute(req: BacktestRequest, progress: Progress = _no_progress) -> dict:
    """Run the request and write its directory; return ``{"out_dir", "report", "summary", ...}``."""
    progress("load candles", 0, 1)
    candles, symbol, interval = load_candles(req)
    if len(candles) < 2:
        raise ValueError(f"{len(candles)} candles in the chosen range: nothing to backtest")
    progress("load candles", 1, 1)
    interval_ms = infer_interval_ms(candles)
    progress("features", 0, 1)
    frame = feature_frame(candles, specs=needed_specs(req))
    progress("features", 1, 1)
    meta = {"symbol": symbol, "interval": interval, "source": str(req.csv) if req.csv else "postgresql:market.candles"}
    out = Path(req.out_dir)
    extra = _sweeps(req, candles, frame, interval_ms, out, progress) if req.sweep else {}
    params = {**req.params, **extra.get("best_params", {})}
    if extra:
        meta["selection"] = {"metric": req.metric, "best_params": extra["best_params"], "in_sample": True,
                             "walk_forward_oos_return_pct": extra.get("walk_forward_oos_return_pct")}
    progress("backtest", 0, 1)
    result = run_backtest(candles, build_strategy(req.strategy, **params), req.model, interval_ms=interval_ms,
                          frame=frame, meta=meta)
    progress("backtest", 1, 1)
    progress("report", 0, 1)
    write_outputs(result, out, html=req.html, png=req.png)
    progress("report", 1, 1)
    report = (out / "report.html").resolve() if req.html else None
    return json_safe({"out_dir": str(out.resolve()), "report": str(report) if report else None,
                      "report_url": report.as_uri() if report else None, "summary": result.summary, **extra})


def needed_specs(req: BacktestRequest) -> tuple:
    """The feature specs of the request's strategy at its parameters and at every valid point of its sweep grid,
    each once: computed once, shared by every grid point that uses them (an invalid point is a row of the sweep
    table; the request's own parameters must be valid)."""
    from klinepipe.features import union_specs
    from trader.backtest.sweep import param_grid

    groups = [build_strategy(req.strategy, **req.params).feature_specs()]
    for point in param_grid({**{k: [v] for k, v in req.params.items()}, **(req.sweep or {})}) if req.sweep else []:
        try:
            groups.append(build_strategy(req.strategy, **point).feature_specs())
        except (ValueError, TypeError):
            continue
    return union_specs(*groups)


def _sweeps(req: BacktestRequest, candles, frame, interval_ms: int, out: Path, progress: Progress = _no_progress) -> dict:
    """Sweep the grid (and walk forward); the full-period backtest then uses the best point."""
    from trader.backtest.sweep import run_sweep, run_walk_forward

    out.mkdir(parents=True, exist_ok=True)
    grid = {**{k: [v] for k, v in req.params.items()}, **req.sweep}
    table = run_sweep(candles, frame, req.strategy, grid, req.model, metric=req.metric, workers=req.workers,
                      interval_ms=interval_ms, progress=lambda done, total: progress("sweep", done, total))
    table.to_csv(out / "sweep.csv", index=False)
    valid = table[table["error"].isna()]
    if valid.empty:
        raise ValueError(f"no valid grid point: {table['error'].iloc[0]}")
    extra = {"sweep": str((out / "sweep.csv").resolve()), "best_params": {k: _plain(valid.iloc[0][k]) for k in grid}}
    if req.walk_forward:
        wf = run_walk_forward(candles, frame, req.strategy, grid, req.model, folds=req.walk_forward, metric=req.metric,
                              workers=req.workers, interval_ms=interval_ms,
                              progress=lambda done, total: progress("walk-forward", done, total))
        wf.to_csv(out / "walk_forward.csv", index=False)
        first, last = req.model.cash, float(wf["oos_final_equity"].iloc[-1])
        extra |= {"walk_forward": str((out / "walk_forward.csv").resolve()),
                  "walk_forward_oos_return_pct": 100.0 * (last / first - 1.0),
                  "walk_forward_folds": json.loads(wf.to_json(orient="records"))}
    return extra


def _plain(value):
    return value.item() if hasattr(value, "item") else value
