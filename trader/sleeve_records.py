"""Each sleeve's records in ``trading.*``: its progress and halt (``sleeves``), what it holds (``positions``),
what it decided (``signals``), and the trader's events (``events``). Every function runs inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal


def ensure_sleeve(cur, mode: str, sleeve: str, symbol: str, interval: str, strategy: str, allocation: Decimal | None = None) -> None:
    """The sleeve's progress and position rows in ``mode`` (each mode has its own: sql/015)."""
    cur.execute(
        "INSERT INTO trading.sleeves (mode, sleeve, symbol, interval, strategy, allocation) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (mode, sleeve) DO UPDATE SET allocation = EXCLUDED.allocation",
        (mode, sleeve, symbol, interval, strategy, allocation),
    )
    cur.execute("INSERT INTO trading.positions (mode, sleeve, symbol) VALUES (%s, %s, %s) ON CONFLICT (mode, sleeve) DO NOTHING",
                (mode, sleeve, symbol))


def lock_sleeve(cur, mode: str, sleeve: str) -> datetime | None:
    """Lock the sleeve's row for this transaction and return the last decided open time."""
    cur.execute("SELECT last_open_time FROM trading.sleeves WHERE mode = %s AND sleeve = %s FOR UPDATE", (mode, sleeve))
    return cur.fetchone()[0]


def advance_sleeve(cur, mode: str, sleeve: str, open_time: datetime) -> None:
    cur.execute("UPDATE trading.sleeves SET last_open_time = %s, updated_at = now() WHERE mode = %s AND sleeve = %s",
                (open_time, mode, sleeve))


def halt_sleeve(cur, mode: str, sleeve: str, reason: str | None) -> int:
    """Halt (``reason``) or resume (``None``) the sleeve in ``mode``; the number of sleeves changed (0: unknown)."""
    cur.execute("UPDATE trading.sleeves SET halted_reason = %s, updated_at = now() WHERE mode = %s AND sleeve = %s",
                (reason, mode, sleeve))
    return cur.rowcount


def halted_reason(cur, mode: str, sleeve: str) -> str | None:
    cur.execute("SELECT halted_reason FROM trading.sleeves WHERE mode = %s AND sleeve = %s", (mode, sleeve))
    row = cur.fetchone()
    return row[0] if row else None


def position(cur, mode: str, sleeve: str) -> Decimal:
    cur.execute("SELECT quantity FROM trading.positions WHERE mode = %s AND sleeve = %s", (mode, sleeve))
    return cur.fetchone()[0]


def positions_by_symbol(cur, mode: str) -> dict[str, Decimal]:
    """Quantity held per symbol by all sleeves of ``mode``."""
    cur.execute("SELECT symbol, sum(quantity) FROM trading.positions WHERE mode = %s GROUP BY symbol", (mode,))
    return dict(cur.fetchall())


def record_signal(cur, mode: str, sleeve: str, symbol: str, interval: str, open_time: datetime, strategy: str, action: str,
                  reason: str) -> None:
    cur.execute(
        "INSERT INTO trading.signals (mode, sleeve, symbol, interval, open_time, strategy, action, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (mode, sleeve, open_time) DO NOTHING",
        (mode, sleeve, symbol, interval, open_time, strategy, action, reason),
    )


def record_event(cur, mode: str, kind: str, detail: str, sleeve: str | None = None, open_time: datetime | None = None,
                 rule: str | None = None) -> None:
    cur.execute("INSERT INTO trading.events (mode, kind, sleeve, open_time, rule, detail) VALUES (%s, %s, %s, %s, %s, %s)",
                (mode, kind, sleeve, open_time, rule, detail))
