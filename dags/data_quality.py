"""Data-quality checks on ``market.candles``: gaps, overlapping or misaligned candles, OHLC sanity, staleness.

Staleness is checked only for series being streamed (the configured ``STREAMING_SYMBOLS`` x
``STREAMING_INTERVALS``, or candles that arrived live), never for imported history: a one-off import does not
turn this DAG red every 15 minutes.

Every check's result is stored in ``etl.quality_checks``; any failure fails the task with a message that
names the series and the times, so it shows red in the UI (runbook in the README).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    description="Every 15 min: gaps, overlaps, misaligned or impossible OHLC and staleness in market.candles; fails naming the series",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["klinepipe", "quality"],
    params={
        "lookback_days": Param(30, type="integer", minimum=1, description="candles opened within this window are checked"),
        "stale_after_minutes": Param(10, type="integer", minimum=1, description="a streamed series with nothing ingested for longer is stale (imported history is never stale)"),
    },
    doc_md=__doc__,
)
def data_quality():
    @task(execution_timeout=timedelta(minutes=10))
    def check(params=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from klinepipe.airflow_conn import database_engine
        from klinepipe.quality import configured_streams, run_quality_checks
        from klinepipe.settings import load_settings

        settings = load_settings()
        engine = database_engine(settings)
        try:
            results = run_quality_checks(engine, lookback=timedelta(days=int(params["lookback_days"])),
                                         stale_after=timedelta(minutes=int(params["stale_after_minutes"])),
                                         streams=configured_streams(settings.streaming_subscriptions))
        finally:
            engine.dispose()
        failed = [r for r in results if not r.passed]
        if failed:
            raise AirflowFailException("data-quality checks failed:\n" + "\n".join(r.describe() for r in failed))
        return {"checks": len(results), "failed": 0}

    check()


data_quality()
