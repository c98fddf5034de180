"""Micro-batch the Kafka topic ``binance.klines`` into ``market.candles``, exactly once.

Runs every minute and, by default, also as soon as a closed kline waits in the topic (an Asset watcher
in the triggerer; ``KLINEPIPE_INGEST_SCHEDULE`` = ``cron`` | ``event`` | ``both``). Each run is one bounded batch: from the offsets stored in ``etl.kafka_offsets`` to the end of each
partition (at most ``max_messages`` / ``max_seconds`` per load task). Invalid messages go to
``etl.dead_letters``, and so do the streaming sidecar's rejects, copied from the dead-letter topic by
``load_dead_letters``. Rows and offsets commit in one transaction, so re-running any run is safe.
``plan`` splits the topic's partitions into ``tasks`` groups, one mapped ``load_batch`` each: 1 on a
2-core machine, up to one per partition on a cluster.

After its commit, ``load_batch`` computes the features of the candles it changed itself (incrementally, from
``etl.features_pending``) and sends ``NOTIFY klinepipe_features``: a closed kline reaches the trader in this one
DAG run, with no second run to wait for. When candles changed, the ``market.candles`` Asset is updated and
``compute_features`` runs too: it finds nothing left to do, unless the loader left the work to it (a full scan
due after a feature-set change, the features lock held by another run, or an error in that step).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from klinepipe.assets import CANDLES, ingest_schedule


@dag(
    description="Kafka binance.klines -> market.candles, one exactly-once micro-batch; every minute and on each closed kline",
    schedule=ingest_schedule(),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=5),
    default_args={"retries": 3, "retry_delay": timedelta(seconds=15)},
    tags=["klinepipe", "ingest"],
    params={
        "max_messages": Param(500_000, type="integer", minimum=1, description="per load task"),
        "max_seconds": Param(30, type="number", minimum=1, description="per load task"),
        "tasks": Param(1, type="integer", minimum=1, description="parallel load tasks, each with a share of the partitions"),
    },
    doc_md=__doc__,
)
def ingest_klines():
    @task(execution_timeout=timedelta(minutes=1))
    def plan(params=None) -> list[list[int]]:
        from airflow.sdk.exceptions import AirflowFailException

        from klinepipe.airflow_conn import kafka_config
        from klinepipe.errors import KlinepipeConfigError
        from klinepipe.kafka_batch import list_partitions
        from klinepipe.settings import load_settings

        try:
            settings = load_settings()  # parsing fell back to a default for a bad one: fail here, naming it
            config, topic = kafka_config(settings), settings.kafka_topic
        except KlinepipeConfigError as exc:  # a bad setting: retrying cannot help
            raise AirflowFailException(str(exc)) from None
        partitions = list_partitions(config, topic)
        _partitions_ahead(settings)
        groups = max(1, min(int(params["tasks"]), len(partitions)))
        return [partitions[i::groups] for i in range(groups)] if partitions else []

    @task(outlets=[CANDLES], execution_timeout=timedelta(minutes=4))
    def load_batch(partitions: list[int], params=None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from klinepipe.airflow_conn import database_engine, kafka_config
        from klinepipe.errors import BrokerRejectedError
        from klinepipe.ingest import ingest_batch
        from klinepipe.settings import load_settings

        settings = load_settings()
        engine = database_engine(settings)
        try:
            result = ingest_batch(engine, kafka_config(settings), topic=settings.kafka_topic, partitions=partitions,
                                  max_messages=int(params["max_messages"]), max_seconds=float(params["max_seconds"]))
            features = features_of_the_batch(engine)
        except BrokerRejectedError as exc:  # e.g. not authorized for the topic: retrying cannot help
            raise AirflowFailException(str(exc)) from None
        finally:
            engine.dispose()
        if result.changed == 0 and result.dead_letters == 0 and not features:
            raise AirflowSkipException(f"nothing new ({result.messages} messages read)")
        return {**result.as_dict(), "features": features}

    @task(execution_timeout=timedelta(minutes=2))
    def load_dead_letters(params=None) -> int:
        """The sidecar's rejects (the dead-letter topic) into etl.dead_letters, beside the loader's own."""
        from airflow.sdk.exceptions import AirflowSkipException

        from klinepipe.airflow_conn import database_engine, kafka_config
        from klinepipe.dead_letter_topic import load_dead_letter_topic
        from klinepipe.settings import load_settings

        settings = load_settings()
        engine = database_engine(settings)
        try:
            loaded = load_dead_letter_topic(engine, kafka_config(settings), topic=settings.kafka_dlq_topic,
                                            max_seconds=float(params["max_seconds"]))
        finally:
            engine.dispose()
        if not loaded:
            raise AirflowSkipException("no new dead letters")
        return loaded

    def features_of_the_batch(engine) -> int | None:
        """The features of what was just committed, NOTIFY included (klinepipe.feature_store.compute_queued_features):
        the series updated; None when left to compute_features, which the market.candles update schedules."""
        import logging

        from klinepipe.feature_store import compute_queued_features

        try:
            updates = compute_queued_features(engine)
        except Exception as exc:  # noqa: BLE001 - the candles are committed; compute_features does the features
            logging.getLogger("klinepipe.ingest").warning("features left to compute_features: %s", exc)
            return None
        return None if updates is None else len(updates)

    def _partitions_ahead(settings) -> None:
        """market.candles / market.features partitions for this month and the next two (klinepipe.partitions)."""
        from klinepipe.airflow_conn import database_engine
        from klinepipe.partitions import ensure_partitions_ahead

        engine = database_engine(settings)
        try:
            ensure_partitions_ahead(engine)
        finally:
            engine.dispose()

    load_batch.expand(partitions=plan())
    load_dead_letters()


ingest_klines()
