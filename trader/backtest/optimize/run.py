"""An optimisation, end to end: candles -> studies in PostgreSQL -> trials on every core -> walk-forward results -> report.

The CLI (``python -m trader optimize``) calls ``execute``; the ``optimize_strategy`` DAG calls ``prepare`` once,
``run_job`` in each mapped task and ``finish`` at the end, so the same studies can be filled from either.

Walk-forward (the default, ``folds=3``): the history is cut into ``folds + 1`` windows; fold ``k``'s study is tuned
on window ``k`` only, and its best parameters are then traded on window ``k + 1``, which no trial of that study saw.
The parameters to use now are the last fold's best (tuned on the most recent in-sample window).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from trader.backtest.candles import infer_interval_ms
from trader.backtest.engine import FillModel
from trader.backtest.optimize.evaluate import Evaluator, walk_forward_windows
from trader.backtest.optimize.space import parse_space, space_from_declared
from trader.backtest.optimize.study import Setup, create_studies, run_trials
from trader.strategies import REGISTRY

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class OptimizeRequest:
    out_dir: Path
    storage: str  # a database URL: the studies live there (schema ``optuna`` on PostgreSQL)
    study: str
    strategy: str = "sma_cross"
    space: dict | str | None = None  # None: from the strategy's parameter declarations
    params: dict = field(default_factory=dict)  # held fixed
    objective: str = "sharpe"
    min_trades: int = 1
    folds: int = 3
    trials: int = 50  # per study (fold); a grid runs every point instead
    sampler: str = "tpe"
    seed: int = 0
    workers: int | None = None
    model: FillModel = field(default_factory=FillModel)
    csv: Path | None = None
    database_url: str | None = None
    symbol: str = ""
    interval: str = ""
    start: datetime | None = None
    end: datetime | None = None
    html: bool = True
    png: bool = True


@dataclass(frozen=True)
class Job:
    """A share of one study's trials: what one process, or one mapped Airflow task, runs."""

    study: str
    fold: int
    bars: tuple[int, int]
    trials: int
    worker: int


def resolve_setup(req: OptimizeRequest, candles: pd.DataFrame) -> Setup:
    if req.strategy not in REGISTRY:
        raise ValueError(f"strategy: unknown {req.strategy!r}; known: {', '.join(sorted(REGISTRY))}")
    declared = REGISTRY[req.strategy].declared_params
    space = parse_space(req.space, declared) if req.space is not None else space_from_declared(declared)
    if unknown := sorted(set(req.params) - set(declared)):
        raise ValueError(f"params: no parameter {', '.join(unknown)}; {req.strategy} takes: {', '.join(declared)}")
    if clash := sorted(set(space.names) & set(req.params)):
        raise ValueError(f"params: {', '.join(clash)} both fixed (--params) and searched (--space)")
    if req.min_trades < 0 or req.trials < 1 or req.folds < 0:
        raise ValueError("min-trades must be >= 0, trials >= 1 and folds >= 0")
    walk_forward_windows(len(candles), req.folds)  # enough bars for the folds, or a clear error
    return Setup(strategy=req.strategy, space=space.as_dict(), objective=req.objective, min_trades=req.min_trades,
                 folds=req.folds, sampler=req.sampler, seed=req.seed, fixed=dict(req.params) or None,
                 bars=len(candles), first_open_time=int(candles["open_time"].iloc[0]))


def plan_jobs(names: list[str], n_bars: int, setup: Setup, trials: int, workers: int) -> list[Job]:
    """Each study's trials split over ``workers`` jobs (a grid: each job drains the study's queue)."""
    windows = walk_forward_windows(n_bars, setup.folds)
    jobs = []
    for k, (name, (in_sample, _)) in enumerate(zip(names, windows)):
        shares = [trials // workers + (1 if w < trials % workers else 0) for w in range(workers)]
        jobs += [Job(name, k, in_sample, n, w) for w, n in enumerate(shares) if n or setup.sampler == "grid"]
    return jobs


def evaluator_for(setup: Setup, candles: pd.DataFrame, model: FillModel) -> Evaluator:
    return Evaluator(candles, setup.strategy, model, setup.objective, setup.min_trades, infer_interval_ms(candles))


_SHARED: tuple | None = None  # (evaluator, setup, storage URL, budgets by study) for forked workers
_STORAGES: dict = {}


def run_job(job: Job, evaluator: Evaluator, setup: Setup, storage_url: str, budget=None) -> dict:
    """Run one job's trials (with a ``budget``: as many of its study's as it hands this job); ``compute_s`` is the
    time spent in the strategy and the backtest."""
    from trader.backtest.optimize.storage import open_storage

    storage = _STORAGES.get(storage_url) or _STORAGES.setdefault(storage_url, open_storage(storage_url))
    before = evaluator.compute_s
    ran = run_trials(storage, job.study, evaluator, setup, job.bars, job.trials, job.worker, budget=budget)
    return {"study": job.study, "ran": ran, "compute_s": evaluator.compute_s - before,
            "cache_hits": evaluator.cache.hits, "cache_misses": evaluator.cache.misses}


def _run_shared(job: Job) -> dict:
    evaluator, setup, url, budgets = _SHARED
    return run_job(job, evaluator, setup, url, budgets.get(job.study))


def run_jobs(jobs: list[Job], evaluator: Evaluator, setup: Setup, storage_url: str, workers: int,
             progress: Progress | None = None) -> list[dict]:
    """The jobs on ``workers`` forked processes (they share the candles copy-on-write), or here with one. A sampled
    study's processes share its trials (``SharedBudget``): each runs the next one when it is free."""
    from trader.backtest.optimize.mirror import SharedBudget

    global _SHARED
    results = []
    if workers <= 1:
        for job in jobs:
            results.append(run_job(job, evaluator, setup, storage_url))
            progress and progress("trials", len(results), len(jobs))
        return results
    budgets = {}
    if setup.sampler != "grid":
        for job in jobs:
            budgets[job.study] = budgets.get(job.study, 0) + job.trials
    _SHARED = (evaluator, setup, storage_url, {study: SharedBudget(n) for study, n in budgets.items()})
    for storage in _STORAGES.values():
        storage.engine.dispose()  # no pooled connection crosses the fork
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for result in pool.map(_run_shared, jobs):
                results.append(result)
                progress and progress("trials", len(results), len(jobs))
    finally:
        _SHARED = None
    return results


@dataclass
class Prepared:
    """An optimisation ready to run trials: its candles, setup, storage and study names."""

    req: OptimizeRequest
    candles: pd.DataFrame
    symbol: str
    interval: str
    setup: Setup
    storage: object
    names: list[str]

    def evaluator(self) -> Evaluator:
        return evaluator_for(self.setup, self.candles, self.req.model)


def prepare(req: OptimizeRequest, create: bool = True, candles: pd.DataFrame | None = None) -> Prepared:
    """Load the candles (unless given) and create (or find again) the studies; ``create=False`` in workers that only
    add trials."""
    from trader.backtest.optimize.storage import open_storage
    from trader.backtest.service import load_candles

    candles, symbol, interval = load_candles(req) if candles is None else (candles, req.symbol, req.interval)
    setup = resolve_setup(req, candles)
    storage = _STORAGES.get(req.storage) if not create else None
    storage = storage or open_storage(req.storage, create=create)
    _STORAGES[req.storage] = storage
    names = create_studies(storage, req.study, setup)
    return Prepared(req, candles, symbol, interval, setup, storage, names)


def finish(p: Prepared, evaluator: Evaluator, trials_run: int, workers: int) -> dict:
    """Collect what the studies found and write the report directory."""
    from trader.backtest.optimize.report import write_report
    from trader.backtest.optimize.results import collect

    result = collect(p.storage, p.names, p.setup, evaluator, p.req.model)
    result |= {"strategy": p.req.strategy, "symbol": p.symbol, "interval": p.interval, "study": p.req.study,
               "trials_run": trials_run, "workers": workers}
    return write_report(result, p.storage, p.names, Path(p.req.out_dir), html=p.req.html, png=p.req.png)


def execute(req: OptimizeRequest, progress: Progress | None = None, candles: pd.DataFrame | None = None) -> dict:
    """Load, create or resume the studies, run the trials on every core, write the report; return the result."""
    p = prepare(req, candles=candles)
    workers = max(1, min(req.workers or os.cpu_count() or 1, req.trials))
    evaluator = p.evaluator()
    started = time.perf_counter()
    stats = run_jobs(plan_jobs(p.names, len(p.candles), p.setup, req.trials, workers), evaluator, p.setup, req.storage,
                     workers, progress)
    trials_s = time.perf_counter() - started
    result = finish(p, evaluator, sum(s["ran"] for s in stats), workers)
    # compute_s: time inside the strategy and the backtest; trials_s: wall time of the trials (all workers)
    return result | {"compute_s": sum(s["compute_s"] for s in stats), "trials_s": trials_s}
