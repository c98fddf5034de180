"""Airflow Assets and schedules that connect the DAGs (imported at DAG parse time: keep it light)."""

import os

from airflow.sdk import Asset, AssetWatcher

CANDLES = Asset(name="market.candles", uri="x-klinepipe://postgres/market/candles")
FEATURES = Asset(name="market.features", uri="x-klinepipe://postgres/market/features")


def klines_topic_asset() -> Asset:
    """The Kafka topic as an Asset whose watcher fires when a closed kline waits to be loaded."""
    from klinepipe.triggers import PendingKlinesTrigger

    topic = os.environ.get("KAFKA_TOPIC", "binance.klines")
    trigger = PendingKlinesTrigger(topic=topic, poll_interval=float(os.environ.get("KLINEPIPE_TRIGGER_POLL_S", "2")))
    return Asset(name=f"kafka.{topic}", uri=f"x-klinepipe://kafka/{topic}",
                 watchers=[AssetWatcher(name="pending_closed_klines", trigger=trigger)])


def ingest_schedule():
    """``KLINEPIPE_INGEST_SCHEDULE``: ``cron`` (every minute), ``event`` (the watcher) or ``both`` (default)."""
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    mode = os.environ.get("KLINEPIPE_INGEST_SCHEDULE", "both")
    cron = CronTriggerTimetable("* * * * *", timezone="UTC")
    if mode == "cron":
        return cron
    if mode == "event":
        return [klines_topic_asset()]
    if mode == "both":
        return AssetOrTimeSchedule(timetable=cron, assets=[klines_topic_asset()])
    raise ValueError(f"KLINEPIPE_INGEST_SCHEDULE must be cron, event or both, not {mode!r}")
