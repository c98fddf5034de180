"""Operator actions from the Trading page: trip the trader's kill switch (HALTED / REDUCING) or resume it.

The page writes the very state the trader reads before every decision (``trading.trader_state`` key
``kill_switch:<mode>``, value ``{"state", "reason", "by"}``: see ``trader.account_records.kill_state`` and
``set_kill_state``), so a running trader obeys it on its next candle; the change and the Airflow user who
made it are recorded in ``trading.events`` (kind ``kill_switch``), in the same transaction. Plain SQL,
no import of ``trader``: the table is the contract between the two.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

STATES = ("ACTIVE", "REDUCING", "HALTED")  # ACTIVE: resume


def set_kill_switch(conn, mode: str, state: str, reason: str, user: str) -> dict:
    """Set the kill switch of ``mode`` to ``state``, recorded with ``reason`` and ``user``; return the new state."""
    if state not in STATES:
        raise ValueError(f"unknown kill-switch state {state!r}; expected one of {', '.join(STATES)}")
    reason = " ".join(reason.split())
    if not reason:
        raise ValueError("a reason is required")
    by = f"{user} (Trading page)"
    conn.execute(sa.text("""
        INSERT INTO trading.trader_state (key, value) VALUES (:key, CAST(:value AS jsonb))
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"""),
                 {"key": f"kill_switch:{mode}", "value": json.dumps({"state": state, "reason": reason, "by": by})})
    conn.execute(sa.text("INSERT INTO trading.events (mode, kind, detail) VALUES (:mode, 'kill_switch', :detail)"),
                 {"mode": mode, "detail": f"{state} by {by}: {reason}"})
    return {"mode": mode, "state": state, "reason": reason, "by": by}


def recent_operator_events(conn, mode: str, limit: int = 10) -> list[dict]:
    """The newest kill-switch transitions and operator actions of ``mode`` (risk's and people's)."""
    rows = conn.execute(sa.text("""
        SELECT at, kind, sleeve, detail FROM trading.events WHERE mode = :mode AND kind IN ('kill_switch', 'operator')
        ORDER BY at DESC, id DESC LIMIT :n"""), {"mode": mode, "n": limit})
    return [{"time": int(r.at.timestamp()), "kind": r.kind, "sleeve": r.sleeve, "detail": r.detail} for r in rows]
