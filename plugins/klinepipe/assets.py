"""Airflow Assets and schedules that connect the DAGs (imported at DAG parse time: keep it light).

A bad ``KAFKA_TOPIC``, ``KLINEPIPE_INGEST_SCHEDULE`` or ``KLINEPIPE_TRIGGER_POLL_S`` never makes a DAG file fail
to import: parsing logs one line and falls back to the default, and ``ingest_klines``' ``plan`` task fails with
that line (``airflow_conn.check_schedule_settings``) so that the run shows it too.
"""

import logging

from airflow.sdk import Asset, AssetWatcher

from klinepipe import KLINES_TOPIC
from klinepipe.errors import KlinepipeConfigError

CANDLES = Asset(name="market.candles", uri="x-klinepipe://postgres/market/candles")
FEATURES = Asset(name="market.features", uri="x-klinepipe://postgres/market/features")
log = logging.getLogger(__name__)


def _or_default(read, default):
    try:
        return read()
    except KlinepipeConfigError as exc:
        log.error("%s; using %r until it is fixed (ingest_klines' plan task fails meanwhile)", exc, default)
        return default


def klines_topic_asset() -> Asset:
    """The Kafka topic as an Asset whose watcher fires when a closed kline waits to be loaded."""
    from klinepipe.airflow_conn import klines_topic, trigger_poll_seconds
    from klinepipe.triggers import PendingKlinesTrigger

    topic = _or_default(klines_topic, KLINES_TOPIC)
    trigger = PendingKlinesTrigger(topic=topic, poll_interval=_or_default(trigger_poll_seconds, 2.0))
    return Asset(name=f"kafka.{topic}", uri=f"x-klinepipe://kafka/{topic}",
                 watchers=[AssetWatcher(name="pending_closed_klines", trigger=trigger)])


def ingest_schedule():
    """``KLINEPIPE_INGEST_SCHEDULE``: ``cron`` (every minute), ``event`` (the watcher) or ``both`` (default)."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    from klinepipe.airflow_conn import ingest_schedule_mode

    mode = _or_default(ingest_schedule_mode, "cron")
    cron = CronTriggerTimetable("* * * * *", timezone="UTC")
    if mode == "cron":
        return cron
    if mode == "event":
        return [klines_topic_asset()]
    return AssetOrTimeSchedule(timetable=cron, assets=[klines_topic_asset()])
