"""The thread that empties the outbox: each message to each channel, at least once, never in the trading loop's way.

One transaction per delivery: lock the message (``FOR UPDATE SKIP LOCKED``), send, record the answer, commit. A 2xx
marks it delivered; anything else schedules the next attempt after a capped exponential backoff (or the
channel's ``Retry-After``). Sends per channel are rate limited (``RateLimit``). The drainer has its own connection;
PostgreSQL going away costs it a reconnect, never the trader a step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

import psycopg2

from trader.notify import outbox
from trader.notify.channels import DeliveryFailed
from trader.notify.messages import RateLimit, backoff_seconds
from trader.notify.summary import enqueue_due_summary
from trader.transaction import Transaction

log = logging.getLogger(__name__)


class NotificationDrainer:
    def __init__(self, connect: Callable, mode: str, channels: Sequence, *, rate_per_minute: int = 20,
                 max_delay: float = 300.0, max_age_hours: float = 24.0, first_delay: float = 5.0,
                 clock: Callable[[], float] = time.time, summaries: bool = True) -> None:
        self._connect, self.mode, self.channels = connect, mode, list(channels)
        self._limits = {c.name: RateLimit(rate_per_minute, clock) for c in self.channels}
        self._max_delay, self._first, self._max_age = max_delay, first_delay, timedelta(hours=max_age_hours)
        self._clock, self._summaries = clock, summaries
        self._conn = None
        self._summary_day = None  # the UTC day whose summary this drainer asked for already
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), timezone.utc)

    def drain_once(self) -> int:
        """Deliver what is due now (within the rate limits); the number of deliveries that succeeded."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        if self._summaries and self._summary_day != self._now().date():
            with Transaction(self._conn) as cur:
                enqueue_due_summary(cur, self.mode, self._now())
            self._summary_day = self._now().date()
        return sum(self._drain_channel(channel) for channel in self.channels)

    def _drain_channel(self, channel) -> int:
        delivered, limit = 0, self._limits[channel.name]
        while limit.available() > 0:
            with Transaction(self._conn) as cur:
                now = self._now()
                batch = outbox.due(cur, self.mode, channel.name, now, self._max_age, 1)
                if not batch:
                    return delivered
                msg, attempts = batch[0]
                limit.take()
                try:
                    channel.send(msg, attempts + 1)
                except DeliveryFailed as err:
                    wait = max(backoff_seconds(attempts + 1, self._max_delay, self._first), err.retry_after or 0)
                    outbox.mark_failed(cur, msg.id, channel.name, attempts + 1, now + timedelta(seconds=wait), str(err))
                    log.warning("notification %s to %s failed (%s); next attempt in %.0f s", msg.message_id, channel.name, err, wait)
                    continue
                outbox.mark_delivered(cur, msg.id, channel.name, attempts + 1, now)
                delivered += 1
        return delivered

    # --- the thread -----------------------------------------------------------------------------
    def start(self, interval: float = 1.0) -> NotificationDrainer:
        self._thread = threading.Thread(target=self._run, args=(interval,), name="notifications", daemon=True)
        self._thread.start()
        return self

    def _run(self, interval: float) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.drain_once()
                failures = 0
            except (psycopg2.Error, OSError) as exc:  # PostgreSQL away: reconnect on the next round
                failures += 1
                log.warning("notifications: database unavailable (%s); retrying", type(exc).__name__)
                self._drop_connection()
            self._stop.wait(min(interval * 2 ** failures, self._max_delay))

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._drop_connection()
