"""The ``optimize_strategy`` DAG's three steps (kept here so the DAG stays thin): plan, run trials (mapped), report.

``plan`` fixes the candle range (an empty end becomes the newest stored candle's, so candles arriving during the
run do not change what the tasks see), creates the studies and returns one JSON-safe job per mapped task: each
study's trials split over ``tasks`` tasks. ``run_trials_job`` adds its share of trials to its study in PostgreSQL;
``report`` writes ``<reports_dir>/<run_id>/``. A retried or re-triggered task only adds trials to the same studies.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from trader.backtest.candles import parse_time
from trader.backtest.dag_request import DEFAULT_REPORTS_DIR, safe_dir_name
from trader.backtest.engine import FillModel
from trader.backtest.optimize.run import Job, OptimizeRequest, finish, plan_jobs, prepare, run_job
from trader.backtest.user_strategies import load_user_strategies
from trader.strategies import strategy_class


def request_from_params(params: dict, run_id: str, database_url: str, reports_dir: Path = DEFAULT_REPORTS_DIR) -> OptimizeRequest:
    """Validate the trigger form's values and build the request (JSON strings accepted for the objects)."""
    p = dict(params or {})
    load_user_strategies()  # TRADER_STRATEGY_DIR's, as the CLI loads them
    strategy_class(p.get("strategy", "sma_cross"))  # unknown: ValueError listing the known ones
    space, fixed = _obj(p.get("space")), _obj(p.get("params"))
    if p.get("constraints"):
        if not space:
            raise ValueError("constraints need a space (the parameters they relate)")
        space = {**space, "constraints": [*space.get("constraints", []), *p["constraints"]]}
    symbol, interval = str(p.get("symbol", "BTCUSDT")).upper(), str(p.get("interval", "1m"))
    strategy = p.get("strategy", "sma_cross")
    model = FillModel(fee_bps=float(p.get("fee_bps", 10.0)), slippage_bps=float(p.get("slippage_bps", 0.0)),
                      size=float(p.get("size", 1.0)))
    return OptimizeRequest(
        out_dir=reports_dir / safe_dir_name(run_id), storage=database_url, database_url=database_url,
        study=p.get("study") or f"{strategy}-{symbol}-{interval}", strategy=strategy, space=space or None,
        params=fixed, objective=p.get("objective", "sharpe"), min_trades=int(p.get("min_trades", 10)),
        folds=int(p.get("folds", 3)), trials=int(p.get("trials", 50)), sampler=p.get("sampler", "tpe"),
        seed=int(p.get("seed", 0)), workers=1, model=model, symbol=symbol, interval=interval,
        start=parse_time(p.get("start") or None), end=parse_time(p.get("end") or None))


def plan(req: OptimizeRequest, tasks: int) -> list[dict]:
    """Create the studies over a fixed candle range; one job per (fold, task)."""
    prepared = prepare(req)
    times = prepared.candles["open_time"]
    step = int(times.iloc[-1] - times.iloc[-2]) if len(times) > 1 else 60_000
    end = datetime.fromtimestamp((int(times.iloc[-1]) + step) / 1000, tz=timezone.utc)
    start = datetime.fromtimestamp(int(times.iloc[0]) / 1000, tz=timezone.utc)
    jobs = plan_jobs(prepared.names, len(prepared.candles), prepared.setup, req.trials, max(1, tasks))
    return [{"study": j.study, "fold": j.fold, "bars": list(j.bars), "trials": j.trials, "worker": j.worker,
             "start": start.isoformat(), "end": end.isoformat()} for j in jobs]


def run_trials_job(req: OptimizeRequest, job: dict) -> dict:
    """One mapped task: the job's trials, on the planned candle range."""
    req = _pinned(req, job)
    prepared = prepare(req, create=False)
    return run_job(Job(job["study"], job["fold"], tuple(job["bars"]), job["trials"], job["worker"]), prepared.evaluator(),
                   prepared.setup, req.storage)


def report(req: OptimizeRequest, jobs: list[dict], results: list[dict]) -> dict:
    req = _pinned(req, jobs[0]) if jobs else req
    prepared = prepare(req, create=False)
    return finish(prepared, prepared.evaluator(), sum(r["ran"] for r in results), len({j["worker"] for j in jobs}))


def _pinned(req: OptimizeRequest, job: dict) -> OptimizeRequest:
    return replace(req, start=parse_time(job["start"]), end=parse_time(job["end"]))


def _obj(value) -> dict:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    return dict(value or {})
