"""Compute features for new closed candles: the default set (returns, SMA/EMA, RSI, MACD, Bollinger, ATR,
volatility, volume z-score; see ``klinepipe.features``) plus every feature spec the trader registered for its
sleeves in ``etl.feature_specs`` (e.g. ``sma(5)``), one ``market.features`` column per output. When that set
grows, the new columns are added and every series' history is computed once; then incrementally again.

Runs whenever ``ingest_klines`` updates the ``market.candles`` Asset. Only series with closed candles
that changed since the last run (queued by every candle merge in ``etl.features_pending``) are touched,
each with a warm-up window; their rows are replaced in ``market.features`` in one transaction and
``NOTIFY klinepipe_features`` tells the trader. Trigger it with ``rescan`` after editing candles or
features by hand: it then looks at every closed candle, as it does on its first run and after a
feature-set change.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from klinepipe.assets import CANDLES, FEATURES


@dag(
    description="Features (returns, SMA/EMA, RSI, MACD, Bollinger, ATR, ...) for new or changed closed candles; "
                "runs on each market.candles update",
    schedule=[CANDLES],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=15)},
    tags=["klinepipe", "features"],
    params={"rescan": Param(False, type="boolean", description="look at every closed candle, not only the queued ones")},
    doc_md=__doc__,
)
def compute_features():
    @task(outlets=[FEATURES], execution_timeout=timedelta(minutes=10))
    def compute(params=None) -> list[dict]:
        from klinepipe.airflow_conn import database_engine
        from klinepipe.feature_store import compute_pending_features

        engine = database_engine()
        try:
            return [u.__dict__ for u in compute_pending_features(engine, rescan=bool(params["rescan"]))]
        finally:
            engine.dispose()

    compute()


compute_features()
