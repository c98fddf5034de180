"""Airflow Assets and schedules that connect the DAGs (imported at DAG parse time: keep it light).

A bad setting (``KAFKA_TOPIC``, ``KLINEPIPE_INGEST_SCHEDULE``, ``KLINEPIPE_TRIGGER_POLL_S``, ...) never makes a DAG
file fail to import: parsing logs one line and falls back to the default (``klinepipe.settings``), and
``ingest_klines``' ``plan`` task fails with that line (``airflow_conn.check_schedule_settings``) so that the run
shows it too.
"""

import logging

from airflow.sdk import Asset, AssetWatcher

from klinepipe.settings import PipelineSettings, load_settings

CANDLES = Asset(name="market.candles", uri="x-klinepipe://postgres/market/candles")
FEATURES = Asset(name="market.features", uri="x-klinepipe://postgres/market/features")
log = logging.getLogger(__name__)


def parse_time_settings() -> PipelineSettings:
    """The settings while Airflow parses the DAG files: a bad value is one logged line and its default."""
    def report(line: str, default) -> None:
        log.error("%s; using %r until it is fixed (ingest_klines' plan task fails meanwhile)", line, default)

    return load_settings(fallback=report)


def klines_topic_asset(settings: PipelineSettings | None = None) -> Asset:
    """The Kafka topic as an Asset whose watcher fires when a closed kline waits to be loaded."""
    from klinepipe.triggers import PendingKlinesTrigger

    settings = parse_time_settings() if settings is None else settings
    topic = settings.kafka_topic
    trigger = PendingKlinesTrigger(topic=topic, poll_interval=settings.trigger_poll_s)
    return Asset(name=f"kafka.{topic}", uri=f"x-klinepipe://kafka/{topic}",
                 watchers=[AssetWatcher(name="pending_closed_klines", trigger=trigger)])


def ingest_schedule():
    """``KLINEPIPE_INGEST_SCHEDULE``: ``cron`` (every minute), ``event`` (the watcher) or ``both`` (default)."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    settings = parse_time_settings()
    cron = CronTriggerTimetable("* * * * *", timezone="UTC")
    if settings.ingest_schedule == "cron":
        return cron
    if settings.ingest_schedule == "event":
        return [klines_topic_asset(settings)]
    return AssetOrTimeSchedule(timetable=cron, assets=[klines_topic_asset(settings)])
