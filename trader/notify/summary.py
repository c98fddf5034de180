"""The daily summary of a mode: one message per UTC day that saw the trader decide, enqueued once (its
``dedupe_key``) however often and by however many drainers it is asked for. Runs inside the caller's transaction."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from trader import account_records
from trader.notify import outbox


def daily_summary(cur, mode: str, day: date) -> dict:
    """Counts of the UTC ``day`` (orders and signals by when they were recorded, fills by when they happened), the
    equity at its end and the change over it, and the kill switch now."""
    start = datetime.combine(day, time(), timezone.utc)
    end = start + timedelta(days=1)
    span = {"m": mode, "s": start, "e": end}
    cur.execute("SELECT (SELECT count(*) FROM trading.orders WHERE mode = %(m)s AND created_at >= %(s)s AND created_at < %(e)s),"
                " (SELECT count(*) FROM trading.fills f JOIN trading.orders o USING (client_order_id) WHERE o.mode = %(m)s"
                "   AND f.filled_at >= %(s)s AND f.filled_at < %(e)s),"
                " (SELECT count(*) FROM trading.events WHERE mode = %(m)s AND kind = 'risk_block' AND at >= %(s)s AND at < %(e)s),"
                " (SELECT count(*) FROM trading.signals WHERE mode = %(m)s AND created_at >= %(s)s AND created_at < %(e)s),"
                " (SELECT equity FROM trading.equity WHERE mode = %(m)s AND at >= %(s)s AND at < %(e)s ORDER BY at LIMIT 1),"
                " (SELECT equity FROM trading.equity WHERE mode = %(m)s AND at < %(e)s ORDER BY at DESC LIMIT 1)", span)
    orders, fills, blocks, decisions, first, last = cur.fetchone()
    return {"day": day.isoformat(), "orders": orders, "fills": fills, "risk_blocks": blocks, "decisions": decisions,
            "equity": str(last) if last is not None else None,
            "pnl": f"{last - first:+}" if first is not None and last is not None else None,
            "kill_switch": account_records.kill_state(cur, mode).state.value}


def enqueue_due_summary(cur, mode: str, now: datetime) -> bool:
    """Enqueue the summary of the UTC day before ``now`` once, when the trader decided anything that day."""
    day = (now.astimezone(timezone.utc) - timedelta(days=1)).date()
    summary = daily_summary(cur, mode, day)
    if not summary["decisions"] and not summary["orders"]:
        return False
    return outbox.enqueue(cur, mode, "daily_summary", summary, f"daily_summary:{mode}:{day.isoformat()}")
