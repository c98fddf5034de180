"""Backtest a strategy over stored candles, from the Airflow UI ("Trigger DAG w/ config").

Params: ``symbol``, ``interval``, ``start`` / ``end`` (UTC; empty = from the first / to the last stored candle),
``strategy`` (a trader strategy name), ``params`` (JSON object of strategy parameters), ``fee_bps``
(per side), ``slippage_bps``, ``size`` (fraction of equity per entry). Candles come from
``market.candles`` (connection ``klinepipe_db``); features, strategy and fills are the trader's own
(``trader.backtest``), the same code the live trader runs.

Output: ``trades.csv``, ``equity.csv``, ``summary.json``, ``report.html`` and ``equity.png`` under
``$KLINEPIPE_REPORTS_DIR/<run_id>/`` (default ``.data/reports/<run_id>/``). The task returns the
report's path and ``file://`` link with the summary (see the task's XCom ``return_value``).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from klinepipe.binance.intervals import INTERVAL_MS

STRATEGIES = ["sma_cross", "ema_cross", "rsi_reversion", "macd_trend", "bollinger_breakout"]  # trader.strategies.BUNDLED


@dag(
    description="Backtest a trader strategy over stored candles (trigger form); "
                "report, trades and equity under .data/reports/<run_id>/",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=15)},
    tags=["klinepipe", "backtest"],
    doc_md=__doc__,
    params={
        "symbol": Param("BTCUSDT", type="string", minLength=1, title="Symbol",
                        description="a stored series' symbol, e.g. BTCUSDT"),
        "interval": Param("1m", type="string", enum=list(INTERVAL_MS), title="Interval"),
        "start": Param(None, type=["null", "string"], format="date-time", title="Start (UTC)",
                       description="first candle open time; empty = from the first stored candle"),
        "end": Param(None, type=["null", "string"], format="date-time", title="End (UTC, exclusive)",
                     description="candles opened before this; empty = to the last stored candle"),
        "strategy": Param("sma_cross", type="string", minLength=1, examples=STRATEGIES, title="Strategy",
                          description="a bundled strategy or one of your own, from TRADER_STRATEGY_DIR"),
        "params": Param({"fast": 10, "slow": 30}, type="object", title="Strategy parameters",
                        description="JSON object; {} = the strategy's defaults"),
        "fee_bps": Param(10.0, type="number", minimum=0, title="Fee (bps per side)"),
        "slippage_bps": Param(0.0, type="number", minimum=0, title="Slippage (bps)"),
        "size": Param(1.0, type="number", exclusiveMinimum=0, maximum=1, title="Size",
                      description="fraction of equity per entry"),
    },
)
def backtest_strategy():
    @task(execution_timeout=timedelta(minutes=30))
    def run_backtest(params: dict | None = None, run_id: str | None = None) -> dict:
        from klinepipe.airflow_conn import database_url
        from klinepipe.settings import load_settings
        from trader.backtest.dag_request import request_from_params
        from trader.backtest.service import execute

        settings = load_settings()
        return execute(request_from_params(params, run_id, database_url(settings), settings.reports_dir))

    run_backtest()


backtest_strategy()
