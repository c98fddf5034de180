"""Micro-batch the Kafka topic ``binance.klines`` into ``market.candles``, exactly once.

Every minute, one bounded batch: from the offsets stored in ``etl.kafka_offsets`` up to the high
watermarks seen at start (at most ``max_messages`` / ``max_seconds``). Invalid messages go to
``etl.dead_letters``. Rows and offsets commit in one transaction, so re-running any run is safe.
When candles changed, the ``market.candles`` Asset is updated and ``compute_features`` runs.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from klinepipe.assets import CANDLES


@dag(
    schedule="* * * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=5),
    default_args={"retries": 3, "retry_delay": timedelta(seconds=15)},
    tags=["klinepipe", "ingest"],
    params={"max_messages": 500_000, "max_seconds": 30},
    doc_md=__doc__,
)
def ingest_klines():
    @task(outlets=[CANDLES], execution_timeout=timedelta(minutes=4))
    def load_batch(params=None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from klinepipe.airflow_conn import database_url, kafka_config, klines_topic
        from klinepipe.db import make_engine
        from klinepipe.ingest import ingest_batch

        engine = make_engine(database_url())
        try:
            result = ingest_batch(engine, kafka_config(), topic=klines_topic(),
                                  max_messages=int(params["max_messages"]), max_seconds=float(params["max_seconds"]))
        finally:
            engine.dispose()
        if result.changed == 0 and result.dead_letters == 0:
            raise AirflowSkipException(f"nothing new ({result.messages} messages read)")
        return result.as_dict()

    load_batch()


ingest_klines()
