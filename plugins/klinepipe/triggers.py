"""Event-driven scheduling for ``ingest_klines``: a trigger that fires when a closed kline waits in the topic.

``PendingKlinesTrigger`` runs in Airflow's triggerer. Every ``poll_interval`` seconds it reads the loader's
stored offsets from PostgreSQL and peeks at the topic from there (no consumer group, nothing committed):
when it finds a closing kline event (``k.x`` true: ``binance.finality.is_closing_event``) it fires one ``TriggerEvent``, and the Asset watcher
turns that into an ``ingest_klines`` run. In-progress updates alone do not fire it; the 1-minute cron
picks those up. Connections come from ``klinepipe_db`` / ``klinepipe_kafka`` (or the env fallbacks).

Outages: the trigger never dies of one. A poll that fails (PostgreSQL or the broker down, a bad setting)
is retried with capped backoff (``poll_interval`` doubling up to ``MAX_BACKOFF_S``); each dependency's
outage is logged once when it starts and once when it ends (``klinepipe.outage``), and counted in Airflow's
metrics (``klinepipe_watcher_dependency_up`` / ``klinepipe_watcher_outages``, when statsd/OTel is on).
librdkafka's own log lines are kept out of the triggerer's log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import closing

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from klinepipe import KLINES_TOPIC
from klinepipe.binance.finality import is_closing_event
from klinepipe.outage import Outage

MAX_BACKOFF_S = 30.0
log = logging.getLogger(__name__)
_LIBRDKAFKA = logging.getLogger("klinepipe.triggers.librdkafka")
_LIBRDKAFKA.setLevel(logging.CRITICAL)


class PendingKlinesTrigger(BaseEventTrigger):
    def __init__(self, topic: str = KLINES_TOPIC, consumer: str = "ingest_klines", poll_interval: float = 2.0) -> None:
        super().__init__()
        self.topic, self.consumer, self.poll_interval = topic, consumer, poll_interval

    def serialize(self) -> tuple[str, dict]:
        return ("klinepipe.triggers.PendingKlinesTrigger",
                {"topic": self.topic, "consumer": self.consumer, "poll_interval": self.poll_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = DependencyWatch(self.poll_interval)
        while True:
            try:
                found = await asyncio.to_thread(pending_closed_klines, self.topic, self.consumer, watch=watch)
            except DependencyDown as down:  # an outage (or a bad setting) must not end the watcher
                await asyncio.sleep(down.delay)
                continue
            if found:
                yield TriggerEvent({"topic": self.topic, "closed_klines_seen": found})
                return
            await asyncio.sleep(self.poll_interval)


class DependencyDown(Exception):
    """A step of a poll failed; ``delay``: the seconds to wait before the next poll (capped backoff)."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay


class DependencyWatch:
    """One ``Outage`` per dependency a poll needs (``settings``, ``postgres``, ``kafka``), each step run through
    ``step``: its failure starts (or continues) that dependency's outage, its success ends it."""

    def __init__(self, poll_interval: float = 2.0) -> None:
        initial = max(poll_interval, 0.1)
        self._make = lambda name: Outage(f"watcher: {name}", log, backoff_initial=initial,
                                         backoff_max=max(initial, MAX_BACKOFF_S))
        self.outages: dict[str, Outage] = {}

    def step(self, dependency: str, call, *, confirms: bool = True):
        """``call()``; ``confirms=False``: its success does not prove the dependency is up (it may hide errors)."""
        tracker = self.outages.get(dependency) or self.outages.setdefault(dependency, self._make(dependency))
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - whatever the dependency raised: it is down (logged once)
            started = tracker.up
            delay = tracker.failed(exc)
            if started:
                _metric("incr", "klinepipe_watcher_outages", dependency)
                _metric("gauge", "klinepipe_watcher_dependency_up", dependency, 0)
            raise DependencyDown(delay) from None
        if confirms and not tracker.up:
            tracker.ok()
            _metric("gauge", "klinepipe_watcher_dependency_up", dependency, 1)
        return result


class _Raise:
    """The watch of a direct call (tests, tools): a failing step raises its own error."""

    @staticmethod
    def step(_dependency: str, call, *, confirms: bool = True):
        return call()


def _metric(kind: str, name: str, dependency: str, value: float = 1) -> None:
    try:
        from airflow.sdk.observability.stats import Stats

        if kind == "incr":
            Stats.incr(name, tags={"dependency": dependency})
        else:
            Stats.gauge(name, value, tags={"dependency": dependency})
    except Exception:  # noqa: BLE001 - metrics are best effort; the log line already said it
        pass


def pending_closed_klines(topic: str, consumer: str, limit: int = 100_000, *, watch=_Raise) -> int:
    """How many closing kline events wait beyond the stored offsets (stops counting at the first chunk with one).
    Each step runs through ``watch`` (a ``DependencyWatch`` in the trigger), named by the dependency it needs."""
    import psycopg2

    from klinepipe.airflow_conn import database_url, kafka_config
    from klinepipe.dsn import libpq_dsn
    from klinepipe.kafka_batch import BatchRead, read_chunks, topic_id
    from klinepipe.kafka_offsets import read_offsets

    def settings():
        # librdkafka's errors surface as the exception of the call instead of lines in the triggerer's log
        return {**kafka_config(), "logger": _LIBRDKAFKA, "error_cb": _ignore}, database_url()

    def connect():
        return psycopg2.connect(libpq_dsn(url), connect_timeout=10)

    def stored_offsets():
        with conn.cursor() as cur:
            return read_offsets(cur, consumer, topic, topic_id=incarnation)

    def count_closed():
        closed = 0
        for chunk in read_chunks(kafka, topic, stored, BatchRead(topic), max_messages=limit, max_seconds=5):
            closed += sum(1 for m in chunk if is_closing_event(m.value()))
            if closed:
                break
        return closed

    kafka, url = watch.step("settings", settings)
    conn = watch.step("postgres", connect)  # first: PostgreSQL's recovery is seen even while the broker is down
    with closing(conn):
        incarnation = watch.step("kafka", lambda: topic_id(kafka, topic), confirms=False)  # None when it cannot ask
        stored = watch.step("postgres", stored_offsets)
    return watch.step("kafka", count_closed)


def _ignore(_err) -> None:
    """librdkafka's error callback: a broker that is down shows as the exception of the call instead."""
