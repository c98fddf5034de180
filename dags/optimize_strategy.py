"""Tune a strategy's parameters with Optuna over stored candles, trials as mapped tasks ("Trigger DAG w/ config").

Params: ``symbol``, ``interval``, ``start`` / ``end`` (UTC; empty = all stored candles, the end fixed when the run
plans), ``strategy``, ``space`` (JSON object, e.g. ``{"lower": {"float": [10, 45]}, "upper": {"float": [55, 90]}}``;
empty = the ranges the strategy declares), ``constraints`` (e.g. ``["fast < slow"]``), ``params`` (held fixed),
``objective`` (sharpe, sortino, calmar, profit), ``min_trades``, ``trials`` (per fold), ``folds`` (walk-forward; 0 =
none), ``sampler``, ``tasks`` (mapped tasks per fold), ``study`` (empty = ``<strategy>-<symbol>-<interval>``), fees.

``plan`` creates the studies in PostgreSQL (schema ``optuna`` of connection ``klinepipe_db``); ``run_trials`` runs
one mapped task per (fold, share of the trials); ``report`` writes ``report.html``, ``trials.csv``, ``folds.csv``,
``summary.json`` and Optuna's plots to ``$KLINEPIPE_REPORTS_DIR/<run_id>/``. Triggering again with the same study
resumes it: the trials add up.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from klinepipe.binance.intervals import INTERVAL_MS

STRATEGIES = ["sma_cross", "ema_cross", "rsi_reversion", "macd_trend", "bollinger_breakout"]  # trader.strategies.BUNDLED
OBJECTIVES = ["sharpe", "sortino", "calmar", "profit"]  # trader.backtest.optimize.evaluate.OBJECTIVES


def _request(params: dict, run_id: str):
    from klinepipe.airflow_conn import database_url
    from klinepipe.settings import load_settings
    from trader.backtest.optimize.dag_jobs import request_from_params

    settings = load_settings()
    return request_from_params(params, run_id, database_url(settings), settings.reports_dir)


@dag(
    description="Tune a strategy's parameters with Optuna (walk-forward, studies in PostgreSQL, trials as mapped tasks)",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=15)},
    tags=["klinepipe", "backtest", "optimize"],
    doc_md=__doc__,
    params={
        "symbol": Param("BTCUSDT", type="string", minLength=1, title="Symbol"),
        "interval": Param("1m", type="string", enum=list(INTERVAL_MS), title="Interval"),
        "start": Param(None, type=["null", "string"], format="date-time", title="Start (UTC)",
                       description="first candle open time; empty = from the first stored candle"),
        "end": Param(None, type=["null", "string"], format="date-time", title="End (UTC, exclusive)",
                     description="candles opened before this; empty = to the newest stored candle"),
        "strategy": Param("rsi_reversion", type="string", minLength=1, examples=STRATEGIES, title="Strategy",
                          description="a bundled strategy or one of your own, from TRADER_STRATEGY_DIR"),
        "space": Param({"lower": {"float": [10, 45]}, "upper": {"float": [55, 90]}}, type="object", title="Search space",
                       description='JSON: {"name": {"int": [lo, hi]}} / {"float": [lo, hi]} / {"choices": [...]}; '
                                   "{} = the strategy's declared ranges"),
        "constraints": Param([], type=["array", "null"], items={"type": "string"}, title="Constraints",
                             description='e.g. ["fast < slow"]'),
        "params": Param({}, type="object", title="Fixed parameters", description="held at these values"),
        "objective": Param("sharpe", type="string", enum=OBJECTIVES, title="Objective (maximised)"),
        "min_trades": Param(10, type="integer", minimum=0, title="Minimum closed trades per window"),
        "trials": Param(50, type="integer", minimum=1, title="Trials per fold"),
        "folds": Param(3, type="integer", minimum=0, title="Walk-forward folds", description="0 = tune on all, no check"),
        "sampler": Param("tpe", type="string", enum=["tpe", "random", "grid"], title="Sampler"),
        "tasks": Param(2, type="integer", minimum=1, maximum=64, title="Mapped tasks per fold"),
        "study": Param(None, type=["null", "string"], title="Study name",
                       description="the same name resumes it; empty = <strategy>-<symbol>-<interval>"),
        "fee_bps": Param(10.0, type="number", minimum=0, title="Fee (bps per side)"),
        "slippage_bps": Param(0.0, type="number", minimum=0, title="Slippage (bps)"),
        "size": Param(1.0, type="number", exclusiveMinimum=0, maximum=1, title="Size",
                      description="fraction of equity per entry"),
    },
)
def optimize_strategy():
    @task(execution_timeout=timedelta(minutes=10))
    def plan(params: dict | None = None, run_id: str | None = None) -> list[dict]:
        from trader.backtest.optimize.dag_jobs import plan

        return plan(_request(params, run_id), int(params.get("tasks", 2)))

    @task(execution_timeout=timedelta(hours=2))
    def run_trials(job: dict, params: dict | None = None, run_id: str | None = None) -> dict:
        from trader.backtest.optimize.dag_jobs import run_trials_job

        return run_trials_job(_request(params, run_id), job)

    @task(execution_timeout=timedelta(minutes=30))
    def report(jobs: list[dict], results: list[dict], params: dict | None = None, run_id: str | None = None) -> dict:
        from trader.backtest.optimize.dag_jobs import report

        return report(_request(params, run_id), list(jobs), list(results))

    jobs = plan()
    report(jobs, run_trials.expand(job=jobs))


optimize_strategy()
