"""The trader's records in PostgreSQL (``trading.*``). Every function runs inside the caller's transaction.

Orders are written as PENDING_SUBMIT before they are sent; every answer of the venue is applied with
``apply_report``, which is idempotent (fills are unique per (client order id, trade id)), so replaying a
report after a crash never moves a position or a balance twice.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pandas as pd

from klinepipe.binance.times import datetime_to_ms as to_ms
from klinepipe.binance.times import ms_to_datetime as from_ms
from trader.brokers.paper import Candle
from trader.orders import OPEN_STATUSES, Fill, OrderIntent, OrderReport
from trader.symbols import split_symbol


def ensure_sleeve(cur, mode: str, sleeve: str, symbol: str, interval: str, strategy: str, allocation: Decimal | None = None) -> None:
    """The sleeve's progress and position rows in ``mode`` (each mode has its own: sql/015)."""
    cur.execute(
        "INSERT INTO trading.sleeves (mode, sleeve, symbol, interval, strategy, allocation) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (mode, sleeve) DO UPDATE SET allocation = EXCLUDED.allocation",
        (mode, sleeve, symbol, interval, strategy, allocation),
    )
    cur.execute("INSERT INTO trading.positions (mode, sleeve, symbol) VALUES (%s, %s, %s) ON CONFLICT (mode, sleeve) DO NOTHING",
                (mode, sleeve, symbol))


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


def load_new_features(cur, symbol: str, interval: str, after: datetime | None, history: int) -> pd.DataFrame:
    """Feature rows newer than ``after`` plus ``history`` rows before them, oldest first."""
    cur.execute(
        """
        (SELECT * FROM market.features WHERE symbol = %(s)s AND interval = %(i)s
           AND open_time <= coalesce(%(a)s::timestamptz, '-infinity') ORDER BY open_time DESC LIMIT %(h)s)
        UNION ALL
        (SELECT * FROM market.features WHERE symbol = %(s)s AND interval = %(i)s
           AND open_time > coalesce(%(a)s::timestamptz, '-infinity'))
        ORDER BY open_time
        """,
        {"s": symbol, "i": interval, "a": after, "h": history},
    )
    cols = [d[0] for d in cur.description]
    return pd.DataFrame(cur.fetchall(), columns=cols)


def newest_candle(cur, symbol: str, interval: str) -> tuple[datetime, datetime] | None:
    """(close_time, ingested_at) of the newest closed candle of the series."""
    cur.execute("SELECT close_time, ingested_at FROM market.candles WHERE symbol = %s AND interval = %s AND is_closed"
                " ORDER BY open_time DESC LIMIT 1", (symbol, interval))
    return cur.fetchone()


def candles_after(cur, symbol: str, interval: str, after_ms: int, limit: int, sleeve: str | None = None,
                  mode: str = "paper") -> list[Candle]:
    """Candles opening after ``after_ms``; with ``sleeve``, only those the sleeve has reached: up to the candle
    after the newest one it decided (whose open is the next price), so a paper order never fills in the future."""
    cur.execute(
        "SELECT open_time, open, high, low FROM market.candles WHERE symbol = %(s)s AND interval = %(i)s AND open_time > %(a)s"
        " AND (%(sl)s::text IS NULL OR open_time <= (SELECT min(c.open_time) FROM market.candles c WHERE c.symbol = %(s)s"
        "  AND c.interval = %(i)s AND c.open_time > (SELECT last_open_time FROM trading.sleeves WHERE mode = %(m)s AND sleeve = %(sl)s)))"
        " ORDER BY open_time LIMIT %(n)s", {"s": symbol, "i": interval, "a": from_ms(after_ms), "sl": sleeve, "n": limit, "m": mode})
    return [Candle(to_ms(t), o, h, lo) for t, o, h, lo in cur.fetchall()]


def position(cur, mode: str, sleeve: str) -> Decimal:
    cur.execute("SELECT quantity FROM trading.positions WHERE mode = %s AND sleeve = %s", (mode, sleeve))
    return cur.fetchone()[0]


def positions_by_symbol(cur, mode: str) -> dict[str, Decimal]:
    """Quantity held per symbol by all sleeves of ``mode``."""
    cur.execute("SELECT symbol, sum(quantity) FROM trading.positions WHERE mode = %s GROUP BY symbol", (mode,))
    return dict(cur.fetchall())


def exposures(cur, mode: str, at: datetime) -> dict[str, Decimal]:
    """Notional held per symbol by all sleeves of ``mode``, marked at the newest close at or before ``at``."""
    cur.execute(
        """SELECT p.symbol, sum(p.quantity) * coalesce((SELECT c.close FROM market.candles c WHERE c.symbol = p.symbol
                  AND c.open_time <= %s ORDER BY c.open_time DESC LIMIT 1), 0)
           FROM trading.positions p WHERE p.mode = %s AND p.quantity <> 0 GROUP BY p.symbol""", (at, mode))
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


# --- orders ---------------------------------------------------------------------------------------
def insert_order(cur, intent: OrderIntent, mode: str, ref_price: Decimal) -> bool:
    """Record the intent as PENDING_SUBMIT; ``False`` when this intent was already recorded (never order twice)."""
    cur.execute(
        "INSERT INTO trading.orders (client_order_id, sleeve, mode, symbol, side, type, quantity, price, stop_price,"
        " time_in_force, ref_price, status, signal_open_time)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'PENDING_SUBMIT', %s) ON CONFLICT (client_order_id) DO NOTHING",
        (intent.client_order_id, intent.sleeve, mode, intent.symbol, intent.side, intent.type, intent.quantity, intent.price,
         intent.stop_price, intent.time_in_force, ref_price, from_ms(intent.signal_open_time_ms)),
    )
    return cur.rowcount == 1


_ORDER_COLS = ("o.client_order_id, o.sleeve, o.symbol, o.side, o.quantity, o.signal_open_time, o.type, o.price, o.stop_price,"
               " o.time_in_force, s.interval, o.status, o.attempts")


def open_orders(cur, mode: str, sleeve: str | None = None) -> list[tuple[OrderIntent, str, int]]:
    """(intent, status, attempts) of every order not final yet, oldest first."""
    cur.execute(f"SELECT {_ORDER_COLS} FROM trading.orders o JOIN trading.sleeves s ON s.mode = o.mode AND s.sleeve = o.sleeve"
                " WHERE o.mode = %s AND o.status = ANY(%s) AND (%s::text IS NULL OR o.sleeve = %s)"
                " ORDER BY o.signal_open_time, o.client_order_id", (mode, list(OPEN_STATUSES), sleeve, sleeve))
    out = []
    for cid, sl, sym, side, qty, t, type_, price, stop, tif, interval, status, attempts in cur.fetchall():
        # the stored id is the truth: orders recorded before ids carried the mode (sql/015) keep theirs
        intent = OrderIntent(sl, sym, side, qty, to_ms(t), type_, price, stop, tif, _intent_of(cid, side), interval, mode, cid)
        out.append((intent, status, attempts))
    return out


def _intent_of(cid: str, side: str) -> str:
    return "STOP_LOSS" if cid.endswith("-L") else side


def bump_attempts(cur, client_order_id: str) -> int:
    """Count one more submit attempt (committed BEFORE the request is sent); return the new count."""
    cur.execute("UPDATE trading.orders SET attempts = attempts + 1, submitted_at = now(), updated_at = now()"
                " WHERE client_order_id = %s RETURNING attempts", (client_order_id,))
    return cur.fetchone()[0]


def record_order_error(cur, mode: str, intent: OrderIntent, kind: str, message: str, final: bool) -> None:
    status_sql = ", status = 'REJECTED'" if final else ""
    cur.execute(f"UPDATE trading.orders SET error = %s, error_kind = %s{status_sql}, updated_at = now() WHERE client_order_id = %s",
                (message, kind, intent.client_order_id))
    record_event(cur, mode, "order_error", f"{intent.client_order_id}: {message}", intent.sleeve,
                 from_ms(intent.signal_open_time_ms), kind)


def apply_report(cur, mode: str, intent: OrderIntent, report: OrderReport) -> list[Fill]:
    """Store the venue's state of the order and every fill not stored yet; move positions and balances by those."""
    new = [f for f in report.fills if _insert_fill(cur, intent, f)]
    for fill in new:
        _move(cur, mode, intent, fill)
    cur.execute(
        "UPDATE trading.orders SET status = %s, exchange_order_id = coalesce(%s, exchange_order_id), executed_qty = %s,"
        " price = coalesce((SELECT sum(quantity * price) / nullif(sum(quantity), 0) FROM trading.fills WHERE client_order_id = %s), price),"
        " updated_at = now() WHERE client_order_id = %s",
        (report.status, report.exchange_order_id, sum((f.quantity for f in report.fills), Decimal(0)) or report.executed_qty,
         intent.client_order_id, intent.client_order_id),
    )
    return new


def _insert_fill(cur, intent: OrderIntent, fill: Fill) -> bool:
    cur.execute(
        "INSERT INTO trading.fills (client_order_id, trade_id, symbol, side, quantity, price, fee, fee_asset, filled_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (client_order_id, trade_id) DO NOTHING",
        (intent.client_order_id, fill.trade_id, intent.symbol, intent.side, fill.quantity, fill.price, fill.fee, fill.fee_asset,
         from_ms(fill.filled_at_ms or intent.signal_open_time_ms)),
    )
    return cur.rowcount == 1


def _move(cur, mode: str, intent: OrderIntent, fill: Fill) -> None:
    base, quote = split_symbol(intent.symbol)
    sign = 1 if intent.side == "BUY" else -1
    held_delta = sign * fill.quantity - (fill.fee if fill.fee_asset == base else 0)
    cur.execute(
        "UPDATE trading.positions SET"
        " avg_price = CASE WHEN %(sign)s > 0 THEN (quantity * avg_price + %(q)s * %(p)s) / nullif(quantity + %(d)s, 0)"
        "  WHEN quantity + %(d)s = 0 THEN 0 ELSE avg_price END,"
        " quantity = quantity + %(d)s, updated_at = now() WHERE mode = %(mode)s AND sleeve = %(sleeve)s",
        {"sign": sign, "q": fill.quantity, "p": fill.price, "d": held_delta, "sleeve": intent.sleeve, "mode": mode},
    )
    for asset, delta in ((base, sign * fill.quantity), (quote, -sign * fill.quantity * fill.price), (fill.fee_asset, -fill.fee)):
        cur.execute("INSERT INTO trading.balances (mode, asset, free) VALUES (%s, %s, %s)"
                    " ON CONFLICT (mode, asset) DO UPDATE SET free = trading.balances.free + EXCLUDED.free, updated_at = now()",
                    (mode, asset, delta))


def recent_order_times(cur, mode: str, since: datetime) -> tuple[int, ...]:
    cur.execute("SELECT created_at FROM trading.orders WHERE mode = %s AND created_at > %s", (mode, since))
    return tuple(to_ms(t) for (t,) in cur.fetchall())


# --- exchange account ------------------------------------------------------------------------------
def account(cur, mode: str) -> str | None:
    """The exchange account the ledger of ``mode`` was last reconciled with (``None``: never)."""
    cur.execute("SELECT value->>'account' FROM trading.trader_state WHERE key = %s", (f"account:{mode}",))
    row = cur.fetchone()
    return row[0] if row else None


def set_account(cur, mode: str, account_id: str) -> None:
    import json

    cur.execute("INSERT INTO trading.trader_state (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                (f"account:{mode}", json.dumps({"account": account_id})))


def accepted_foreign(cur, mode: str) -> tuple[set[str], set[str]]:
    """(client order ids, exchange order ids) of orders placed outside the trader that the operator accepted."""
    cur.execute("SELECT value FROM trading.trader_state WHERE key = %s", (f"foreign_orders:{mode}",))
    row = cur.fetchone()
    return (set(row[0].get("client_order_ids", [])), set(row[0].get("exchange_order_ids", []))) if row else (set(), set())


def accept_foreign(cur, mode: str, client_order_ids: set[str], exchange_order_ids: set[str]) -> None:
    import json

    cids, ids = accepted_foreign(cur, mode)
    value = {"client_order_ids": sorted(cids | client_order_ids), "exchange_order_ids": sorted(ids | exchange_order_ids)}
    cur.execute("INSERT INTO trading.trader_state (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                (f"foreign_orders:{mode}", json.dumps(value)))


# --- kill switch and equity -----------------------------------------------------------------------
def kill_state(cur, mode: str) -> tuple[str, str]:
    cur.execute("SELECT value FROM trading.trader_state WHERE key = %s", (f"kill_switch:{mode}",))
    row = cur.fetchone()
    return (row[0]["state"], row[0].get("reason", "")) if row else ("ACTIVE", "")


def set_kill_state(cur, mode: str, state: str, reason: str, actor: str) -> None:
    import json

    cur.execute("INSERT INTO trading.trader_state (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                (f"kill_switch:{mode}", json.dumps({"state": state, "reason": reason, "by": actor})))
    record_event(cur, mode, "kill_switch", f"{state} by {actor}: {reason}")


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
