"""The account of a trading mode in ``trading.*``: balances, exposure and equity, the exchange account it was
reconciled with, foreign orders the operator accepted, and the kill switch (``trader_state``). Every function runs inside the caller's transaction.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from trader.risk.killswitch import KillState, KillSwitch
from trader.sleeve_records import record_event


def seed_balance(cur, mode: str, asset: str, amount: Decimal) -> None:
    cur.execute("INSERT INTO trading.balances (mode, asset, free) VALUES (%s, %s, %s) ON CONFLICT (mode, asset) DO NOTHING",
                (mode, asset, amount))


def set_balance(cur, mode: str, asset: str, amount: Decimal) -> None:
    cur.execute("INSERT INTO trading.balances (mode, asset, free) VALUES (%s, %s, %s)"
                " ON CONFLICT (mode, asset) DO UPDATE SET free = EXCLUDED.free, updated_at = now()", (mode, asset, amount))


def balances(cur, mode: str) -> dict[str, Decimal]:
    cur.execute("SELECT asset, free FROM trading.balances WHERE mode = %s ORDER BY asset", (mode,))
    return dict(cur.fetchall())


def balance(cur, mode: str, asset: str) -> Decimal:
    return balances(cur, mode).get(asset, Decimal(0))


def exposures(cur, mode: str, at: datetime) -> dict[str, Decimal]:
    """Notional held per symbol by all sleeves of ``mode``, marked at the newest close at or before ``at``."""
    cur.execute(
        """SELECT p.symbol, sum(p.quantity) * coalesce((SELECT c.close FROM market.candles c WHERE c.symbol = p.symbol
                  AND c.open_time <= %s ORDER BY c.open_time DESC LIMIT 1), 0)
           FROM trading.positions p WHERE p.mode = %s AND p.quantity <> 0 GROUP BY p.symbol""", (at, mode))
    return dict(cur.fetchall())


def account(cur, mode: str) -> str | None:
    """The exchange account the ledger of ``mode`` was last reconciled with (``None``: never)."""
    cur.execute("SELECT value->>'account' FROM trading.trader_state WHERE key = %s", (f"account:{mode}",))
    row = cur.fetchone()
    return row[0] if row else None


def set_account(cur, mode: str, account_id: str) -> None:
    cur.execute("INSERT INTO trading.trader_state (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                (f"account:{mode}", json.dumps({"account": account_id})))


def accepted_foreign(cur, mode: str) -> tuple[set[str], set[str]]:
    """(client order ids, exchange order ids) of orders placed outside the trader that the operator accepted."""
    cur.execute("SELECT value FROM trading.trader_state WHERE key = %s", (f"foreign_orders:{mode}",))
    row = cur.fetchone()
    return (set(row[0].get("client_order_ids", [])), set(row[0].get("exchange_order_ids", []))) if row else (set(), set())


def accept_foreign(cur, mode: str, client_order_ids: set[str], exchange_order_ids: set[str]) -> None:
    cids, ids = accepted_foreign(cur, mode)
    value = {"client_order_ids": sorted(cids | client_order_ids), "exchange_order_ids": sorted(ids | exchange_order_ids)}
    cur.execute("INSERT INTO trading.trader_state (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                (f"foreign_orders:{mode}", json.dumps(value)))


def kill_state(cur, mode: str) -> KillSwitch:
    cur.execute("SELECT value FROM trading.trader_state WHERE key = %s", (KillSwitch.key(mode),))
    row = cur.fetchone()
    return KillSwitch.from_value(row[0] if row else None)


def set_kill_state(cur, mode: str, state: str, reason: str, actor: str) -> None:
    switch = KillSwitch(state=KillState(state), reason=reason, by=actor)
    cur.execute("INSERT INTO trading.trader_state (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                (KillSwitch.key(mode), json.dumps(switch.to_value())))
    record_event(cur, mode, "kill_switch", f"{switch.state.value} by {actor}: {reason}")


def mark_equity(cur, mode: str, quote: str, at: datetime) -> tuple[Decimal, Decimal, Decimal]:
    """Record the equity (quote balance + positions at the newest closes) at ``at``; return (equity, peak, day start)."""
    equity = balance(cur, mode, quote) + sum(exposures(cur, mode, at).values(), Decimal(0))
    cur.execute("INSERT INTO trading.equity (mode, at, equity) VALUES (%s, %s, %s)"
                " ON CONFLICT (mode, at) DO UPDATE SET equity = EXCLUDED.equity", (mode, at, equity))
    cur.execute("SELECT max(equity) FROM trading.equity WHERE mode = %s", (mode,))
    peak = cur.fetchone()[0]
    cur.execute("SELECT equity FROM trading.equity WHERE mode = %s AND at >= date_trunc('day', %s::timestamptz AT TIME ZONE 'UTC')"
                " AT TIME ZONE 'UTC' ORDER BY at LIMIT 1", (mode, at))
    day_start = cur.fetchone()[0]
    return equity, peak, day_start
