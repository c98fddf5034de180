"""The notification outbox in ``trading.notifications`` / ``notification_deliveries`` (sql/017). Every function
runs inside the caller's transaction."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from trader.notify.messages import Message


def enqueue(cur, mode: str, kind: str, payload: dict, dedupe_key: str | None = None) -> bool:
    """Add a message (fills and events are added by triggers); ``False`` when ``dedupe_key`` was enqueued before."""
    cur.execute("INSERT INTO trading.notifications (mode, kind, payload, dedupe_key) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (dedupe_key) DO NOTHING", (mode, kind, json.dumps(payload, default=str), dedupe_key))
    return cur.rowcount == 1


def due(cur, mode: str, channel: str, now: datetime, max_age: timedelta, limit: int) -> list[tuple[Message, int]]:
    """(message, attempts so far) not delivered to ``channel`` yet and due at ``now``, oldest first, locked for this
    transaction (another drainer skips them)."""
    cur.execute(
        "SELECT n.id, n.kind, n.payload, n.created_at, coalesce(d.attempts, 0) FROM trading.notifications n"
        " LEFT JOIN trading.notification_deliveries d ON d.notification_id = n.id AND d.channel = %(c)s"
        " WHERE n.mode = %(m)s AND d.delivered_at IS NULL AND coalesce(d.next_attempt_at, n.created_at) <= %(now)s"
        " AND n.created_at > %(oldest)s ORDER BY n.id LIMIT %(n)s FOR UPDATE OF n SKIP LOCKED",
        {"c": channel, "m": mode, "now": now, "oldest": now - max_age, "n": limit})
    return [(Message(id=i, mode=mode, kind=k, payload=p, created_at=at), n) for i, k, p, at, n in cur.fetchall()]


def mark_delivered(cur, message_id: int, channel: str, attempts: int, at: datetime) -> None:
    cur.execute("INSERT INTO trading.notification_deliveries (notification_id, channel, attempts, delivered_at, last_error)"
                " VALUES (%s, %s, %s, %s, NULL) ON CONFLICT (notification_id, channel) DO UPDATE SET"
                " attempts = EXCLUDED.attempts, delivered_at = EXCLUDED.delivered_at, last_error = NULL",
                (message_id, channel, attempts, at))


def mark_failed(cur, message_id: int, channel: str, attempts: int, retry_at: datetime, error: str) -> None:
    cur.execute("INSERT INTO trading.notification_deliveries (notification_id, channel, attempts, next_attempt_at, last_error)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (notification_id, channel) DO UPDATE SET"
                " attempts = EXCLUDED.attempts, next_attempt_at = EXCLUDED.next_attempt_at, last_error = EXCLUDED.last_error",
                (message_id, channel, attempts, retry_at, error))
