"""Import data.binance.vision kline files (`.zip` or `.csv`, ms or µs times) from a local path.

Trigger it with `files`: a path or a glob, e.g. `/data/BTCUSDT-1m-2024-*.zip` (the symbol and interval
come from the file names, `SYMBOL-INTERVAL-...`). Every row passes the same checks as a streamed candle;
a bad row fails the run at once, naming the file, the row and the field. Rows are upserted as closed
candles with `source = 'file'`. A DAG of its own, apart from `backfill_klines`, so that an import never
queues behind a REST history load (which may take hours, or wait on Binance).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from klinepipe.assets import CANDLES


@dag(
    description="Import local data.binance.vision kline files (.zip/.csv, a path or a glob) into market.candles",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["klinepipe", "backfill"],
    params={
        "files": Param("", type="string", minLength=1, title="Files",
                       description="path or glob of data.binance.vision .zip/.csv files on the Airflow machine, "
                                   "e.g. /data/BTCUSDT-1m-2024-*.zip"),
    },
    doc_md=__doc__,
)
def import_kline_files():
    @task(outlets=[CANDLES], execution_timeout=timedelta(hours=2))
    def import_files(params=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from klinepipe.airflow_conn import database_engine
        from klinepipe.backfill import import_files as load_files
        from klinepipe.backfill_request import import_request
        from klinepipe.errors import KlinepipeConfigError, KlinepipeFatalError

        try:
            req = import_request(dict(params))
        except KlinepipeConfigError as exc:  # a bad trigger form: retrying cannot help
            raise AirflowFailException(f"import_kline_files params: {exc}") from None
        engine = database_engine()
        try:
            return {"imported": load_files(engine, req.paths)}
        except KlinepipeFatalError as exc:  # a bad row stays bad
            raise AirflowFailException(f"import_kline_files: {exc}") from None
        finally:
            engine.dispose()

    import_files()


import_kline_files()
