"""Backfill candles from Binance REST klines.

- **History load** (the trigger form): fill `symbols` (one per line, e.g. `BTCUSDT`), `interval`, `start`
  and `end` (UTC; `end` exclusive) — every closed candle in [start, end) is fetched and stored.
- **Gap fill** (the hourly schedule, or the form with `symbols` left empty): finds missing closed candles
  between stored ones (SQL `lead()`) over the last `lookback_days` and fetches exactly those.

Local data.binance.vision files are imported by the `import_kline_files` DAG, so an import never waits
behind a slow or failing REST load. Requests go through python-binance, 1,000 candles a page, pacing on
the used-weight header and honouring `Retry-After` on 429/418. When Binance cannot be reached at all the
run fails within seconds, saying why (e.g. `cannot reach https://api.binance.com: name resolution
failed`); a 4xx such as an unknown symbol fails at once; neither is retried by Airflow. Rows are
upserted as closed candles with `source = 'backfill'`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from klinepipe.assets import CANDLES
from klinepipe.binance.intervals import INTERVAL_MS


@dag(
    description="History load of symbols × interval from Binance REST (trigger form), "
                "or the hourly fill of gaps between stored candles",
    schedule="@hourly",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["klinepipe", "backfill"],
    params={
        "symbols": Param(None, type=["null", "array"], items={"type": "string"}, title="Symbols",
                         description="Binance symbols to load, one per line (e.g. BTCUSDT). Empty = no history load: "
                                     "fill the gaps of every stored series instead"),
        "interval": Param("1m", type="string", enum=list(INTERVAL_MS), title="Interval",
                          description="candle interval of the history load"),
        "start": Param(None, type=["null", "string"], format="date-time", title="Start (UTC)",
                       description="first candle open time of the history load; needed when symbols are given"),
        "end": Param(None, type=["null", "string"], format="date-time", title="End (UTC, exclusive)",
                     description="the history load stops before this open time; needed when symbols are given"),
        "lookback_days": Param(7, type="integer", minimum=1, title="Gap search window (days)",
                               description="gap fill only (symbols empty): look this many days back"),
    },
    doc_md=__doc__,
)
def backfill_klines():
    @task(outlets=[CANDLES], execution_timeout=timedelta(hours=2))
    def backfill(params=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from klinepipe.airflow_conn import binance_client, database_engine
        from klinepipe.backfill import fill_gaps, load_history
        from klinepipe.backfill_request import LoadHistory, backfill_request
        from klinepipe.errors import KlinepipeConfigError, KlinepipeFatalError
        from klinepipe.settings import load_settings

        try:
            req = backfill_request(dict(params))
        except KlinepipeConfigError as exc:  # a bad trigger form: retrying cannot help
            raise AirflowFailException(f"backfill_klines params: {exc}") from None
        try:
            settings = load_settings()
        except KlinepipeConfigError as exc:  # e.g. BINANCE_REST_URL not a URL
            raise AirflowFailException(f"backfill_klines: {exc}") from None
        engine, client = database_engine(settings), binance_client(settings)
        try:
            if isinstance(req, LoadHistory):
                return {"loaded": load_history(engine, client, list(req.symbols), req.interval, req.start, req.end)}
            now = pendulum.now("UTC")
            return {"gaps": fill_gaps(engine, client, now.subtract(days=req.lookback_days), now)}
        except KlinepipeFatalError as exc:  # unreachable, a 4xx, a bad row: the same run a minute later fails the same way
            raise AirflowFailException(f"backfill_klines: {exc}") from None
        finally:
            engine.dispose()

    backfill()


backfill_klines()
