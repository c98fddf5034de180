"""The user data stream's state in ``trading.trader_state`` (key ``user_stream:<mode>``), written by the trader
process and read by ``python -m trader status``. Every function runs inside the caller's transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StreamState:
    connected: bool
    subscriptions: int  # by the process that wrote it: 1 + resubscriptions
    fills: int  # fills new to the ledger that came from the stream, by that process
    last_event_at: datetime | None
    updated_at: datetime  # when it was written (a trader that stopped leaves its last state)
    protection_fills: int = 0  # of ``fills``, those of protection legs (a stop or take-profit that fired)


def _key(mode: str) -> str:
    return f"user_stream:{mode}"


def record_stream_state(cur, mode: str, connected: bool, subscriptions: int, fills: int, last_event_at: float | None,
                        protection_fills: int = 0) -> None:
    """Store the stream's state (``last_event_at``: epoch seconds, ``None`` before the first event)."""
    cur.execute("INSERT INTO trading.trader_state (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                (_key(mode), json.dumps({"connected": connected, "subscriptions": subscriptions, "fills": fills,
                                         "last_event_at": last_event_at, "protection_fills": protection_fills})))


def stream_state(cur, mode: str) -> StreamState | None:
    """The stored state (``None``: no trader of this mode ever ran the stream)."""
    cur.execute("SELECT value, updated_at, to_timestamp((value->>'last_event_at')::float8) FROM trading.trader_state"
                " WHERE key = %s", (_key(mode),))
    row = cur.fetchone()
    if row is None:
        return None
    value, updated_at, last = row
    return StreamState(bool(value.get("connected")), int(value.get("subscriptions", 0)), int(value.get("fills", 0)),
                       last, updated_at, int(value.get("protection_fills", 0)))


def describe(state: StreamState | None, now: datetime) -> str:
    """The status line of the stream (pure)."""
    if state is None:
        return "user data stream: never run in this mode"
    age = f"{(now - state.last_event_at).total_seconds():.0f} s ago" if state.last_event_at else "none yet"
    return (f"user data stream: {'connected' if state.connected else 'not connected'} (as of {state.updated_at:%Y-%m-%d %H:%M:%S});"
            f" last event {age}; {state.subscriptions} subscription(s), {state.fills} fill(s) from the stream"
            f" ({state.protection_fills} of protection legs)")
