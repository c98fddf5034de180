"""Backfill candles from Binance REST klines, or import data.binance.vision kline files.

- Triggered with ``symbols``, ``interval``, ``start`` and ``end`` (the trigger form in the UI): an initial
  history load of every closed candle in [start, end).
- Triggered with ``files`` (a glob of local ``.zip``/``.csv`` files from data.binance.vision): an import.
- On its hourly schedule (no params): finds missing closed candles between stored ones (SQL ``lead()``)
  over the last ``lookback_days`` and fetches exactly those.
Requests go through python-binance, 1,000 candles a page, pacing on the used-weight header and
honouring ``Retry-After`` on 429/418. Rows are upserted as closed candles with ``source = 'backfill'``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from klinepipe.assets import CANDLES

INTERVALS = ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"]


@dag(
    schedule="@hourly",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["klinepipe", "backfill"],
    params={
        "symbols": Param([], type="array", items={"type": "string"}, description="e.g. BTCUSDT (history load)"),
        "interval": Param("1m", enum=INTERVALS),
        "start": Param(None, type=["null", "string"], format="date-time", description="history load start (UTC)"),
        "end": Param(None, type=["null", "string"], format="date-time", description="history load end (UTC), exclusive"),
        "files": Param("", type="string", description="glob of local data.binance.vision .zip/.csv files to import"),
        "lookback_days": Param(7, type="integer", minimum=1, description="scheduled gap search window"),
    },
    doc_md=__doc__,
)
def backfill_klines():
    @task(outlets=[CANDLES], execution_timeout=timedelta(hours=2))
    def backfill(params=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from klinepipe.airflow_conn import binance_client, database_engine
        from klinepipe.backfill import fill_gaps, import_files, load_history
        from klinepipe.backfill_request import ImportFiles, LoadHistory, backfill_request
        from klinepipe.errors import ConfigError

        try:
            req = backfill_request(dict(params))
        except ConfigError as exc:  # a bad trigger form: retrying cannot help
            raise AirflowFailException(f"backfill_klines params: {exc}") from None
        engine = database_engine()
        try:
            if isinstance(req, ImportFiles):
                return {"imported": import_files(engine, req.paths)}
            if isinstance(req, LoadHistory):
                return {"loaded": load_history(engine, binance_client(), list(req.symbols), req.interval, req.start, req.end)}
            now = pendulum.now("UTC")
            return {"gaps": fill_gaps(engine, binance_client(), now.subtract(days=req.lookback_days), now)}
        finally:
            engine.dispose()

    backfill()


backfill_klines()
