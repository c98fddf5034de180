"""The trader's records in PostgreSQL (``trading.*``). Every function runs inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pandas as pd

from trader.brokers.paper import Fill
from trader.orders import OrderIntent


def ensure_sleeve(cur, sleeve: str, symbol: str, interval: str, strategy: str) -> None:
    cur.execute(
        "INSERT INTO trading.sleeves (sleeve, symbol, interval, strategy) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (sleeve) DO NOTHING",
        (sleeve, symbol, interval, strategy),
    )
    cur.execute("INSERT INTO trading.positions (sleeve, symbol) VALUES (%s, %s) ON CONFLICT (sleeve) DO NOTHING", (sleeve, symbol))


def seed_balance(cur, mode: str, asset: str, amount: Decimal) -> None:
    cur.execute(
        "INSERT INTO trading.balances (mode, asset, free) VALUES (%s, %s, %s) ON CONFLICT (mode, asset) DO NOTHING",
        (mode, asset, amount),
    )


def lock_sleeve(cur, sleeve: str) -> datetime | None:
    """Lock the sleeve's row for this transaction and return the last decided open time."""
    cur.execute("SELECT last_open_time FROM trading.sleeves WHERE sleeve = %s FOR UPDATE", (sleeve,))
    return cur.fetchone()[0]


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


def position(cur, sleeve: str) -> Decimal:
    cur.execute("SELECT quantity FROM trading.positions WHERE sleeve = %s", (sleeve,))
    return cur.fetchone()[0]


def balance(cur, mode: str, asset: str) -> Decimal:
    cur.execute("SELECT free FROM trading.balances WHERE mode = %s AND asset = %s", (mode, asset))
    row = cur.fetchone()
    return row[0] if row else Decimal(0)


def record_signal(cur, sleeve: str, symbol: str, interval: str, open_time: datetime, strategy: str, action: str, reason: str) -> None:
    cur.execute(
        "INSERT INTO trading.signals (sleeve, symbol, interval, open_time, strategy, action, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (sleeve, open_time) DO NOTHING",
        (sleeve, symbol, interval, open_time, strategy, action, reason),
    )


def record_order(cur, intent: OrderIntent, mode: str, open_time: datetime) -> bool:
    """Insert the order as NEW; ``False`` when this intent was already recorded (never order twice)."""
    cur.execute(
        "INSERT INTO trading.orders (client_order_id, sleeve, mode, symbol, side, type, quantity, status, signal_open_time)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, 'NEW', %s) ON CONFLICT (client_order_id) DO NOTHING",
        (intent.client_order_id, intent.sleeve, mode, intent.symbol, intent.side, intent.type, intent.quantity, open_time),
    )
    return cur.rowcount == 1


def record_fill(cur, intent: OrderIntent, fill: Fill, mode: str, base: str, quote: str, filled_at: datetime) -> None:
    """Store the fill, mark the order FILLED, and move the position and balances."""
    cur.execute(
        "INSERT INTO trading.fills (client_order_id, trade_id, symbol, side, quantity, price, fee, fee_asset, filled_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (intent.client_order_id, fill.trade_id, intent.symbol, intent.side, fill.quantity, fill.price, fill.fee, fill.fee_asset, filled_at),
    )
    cur.execute(
        "UPDATE trading.orders SET status = 'FILLED', price = %s, updated_at = now() WHERE client_order_id = %s",
        (fill.price, intent.client_order_id),
    )
    sign = 1 if intent.side == "BUY" else -1
    cur.execute(
        "UPDATE trading.positions SET"
        " avg_price = CASE WHEN %(sign)s > 0 THEN (quantity * avg_price + %(q)s * %(p)s) / (quantity + %(q)s)"
        "  WHEN quantity - %(q)s = 0 THEN 0 ELSE avg_price END,"
        " quantity = quantity + %(sign)s * %(q)s, updated_at = now() WHERE sleeve = %(sleeve)s",
        {"sign": sign, "q": fill.quantity, "p": fill.price, "sleeve": intent.sleeve},
    )
    notional = fill.quantity * fill.price
    for asset, delta in ((base, sign * fill.quantity), (quote, -sign * notional - fill.fee)):
        cur.execute(
            "INSERT INTO trading.balances (mode, asset, free) VALUES (%s, %s, %s)"
            " ON CONFLICT (mode, asset) DO UPDATE SET free = trading.balances.free + EXCLUDED.free, updated_at = now()",
            (mode, asset, delta),
        )


def advance_sleeve(cur, sleeve: str, open_time: datetime) -> None:
    cur.execute("UPDATE trading.sleeves SET last_open_time = %s, updated_at = now() WHERE sleeve = %s", (open_time, sleeve))
