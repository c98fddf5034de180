"""The Trading page's reads of the pipeline's PostgreSQL: plain SQL in, plain JSON-ready dicts out.

Every function takes an open SQLAlchemy ``Connection`` and only reads. Decimals become floats and
times epoch seconds (what the chart library wants); nothing here knows about HTTP or Airflow.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

MAX_CANDLES = 2000


def _num(v) -> float | None:
    return None if v is None else float(v)


def _ts(v: datetime | None) -> int | None:
    return None if v is None else int(v.timestamp())


def _rows(conn, sql: str, **params) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]


def list_series(conn) -> list[dict]:
    """Every stored series with its size and freshness: newest candle, its age, ingest lag."""
    rows = _rows(conn, """
        SELECT symbol, interval, count(*) AS candles, max(open_time) AS newest_open_time,
               max(close_time) FILTER (WHERE is_closed) AS newest_closed_close_time,
               max(ingested_at) AS newest_ingested_at, now() AS db_now,
               (array_agg(source ORDER BY open_time DESC))[1] = 'replay' AS replayed
        FROM market.candles GROUP BY symbol, interval ORDER BY symbol, interval""")
    return [{
        "symbol": r["symbol"], "interval": r["interval"], "candles": r["candles"],
        "newest_open_time": _ts(r["newest_open_time"]),
        "newest_closed_age_s": (r["db_now"] - r["newest_closed_close_time"]).total_seconds()
        if r["newest_closed_close_time"] else None,
        "ingest_lag_s": (r["db_now"] - r["newest_ingested_at"]).total_seconds(),
        "replayed": bool(r["replayed"]),  # its newest candle came from a replay (the demo market): not live prices
    } for r in rows]


def candles(conn, symbol: str, interval: str, limit: int = 500) -> list[dict]:
    """The newest ``limit`` candles of one series, oldest first."""
    rows = _rows(conn, """
        SELECT open_time, open, high, low, close, volume, is_closed FROM (
            SELECT * FROM market.candles WHERE symbol = :s AND interval = :i ORDER BY open_time DESC LIMIT :n
        ) c ORDER BY open_time""", s=symbol, i=interval, n=min(max(limit, 1), MAX_CANDLES))
    return [{"time": _ts(r["open_time"]), "open": _num(r["open"]), "high": _num(r["high"]), "low": _num(r["low"]),
             "close": _num(r["close"]), "volume": _num(r["volume"]), "closed": r["is_closed"]} for r in rows]


def trades(conn, symbol: str, since: datetime | None, mode: str | None = None) -> list[dict]:
    """Fills of one symbol (any sleeve; one mode when given) from ``since`` on: the entries and exits to mark."""
    rows = _rows(conn, """
        SELECT f.filled_at, f.side, f.quantity, f.price, f.fee, o.sleeve, o.mode, o.client_order_id
        FROM trading.fills f JOIN trading.orders o USING (client_order_id)
        WHERE f.symbol = :s AND (CAST(:since AS timestamptz) IS NULL OR f.filled_at >= :since)
          AND (CAST(:mode AS text) IS NULL OR o.mode = :mode)
        ORDER BY f.filled_at, f.id""", s=symbol, since=since, mode=mode)
    return [{"time": _ts(r["filled_at"]), "side": r["side"], "quantity": _num(r["quantity"]), "price": _num(r["price"]),
             "fee": _num(r["fee"]), "sleeve": r["sleeve"], "mode": r["mode"], "client_order_id": r["client_order_id"]}
            for r in rows]


def positions(conn) -> list[dict]:
    """Each sleeve's position, valued at its series' newest close, and its last decision."""
    rows = _rows(conn, """
        SELECT s.sleeve, s.symbol, s.interval, s.strategy, s.halted_reason, p.quantity, p.avg_price,
               c.close AS last_close, g.open_time AS decided_at, g.action, g.reason
        FROM trading.sleeves s JOIN trading.positions p USING (sleeve)
        LEFT JOIN LATERAL (SELECT close FROM market.candles m WHERE m.symbol = s.symbol AND m.interval = s.interval
                           ORDER BY open_time DESC LIMIT 1) c ON true
        LEFT JOIN LATERAL (SELECT open_time, action, reason FROM trading.signals x WHERE x.sleeve = s.sleeve
                           ORDER BY open_time DESC LIMIT 1) g ON true
        ORDER BY s.sleeve""")
    out = []
    for r in rows:
        qty, avg, last = r["quantity"], r["avg_price"], r["last_close"]
        unrealized = (last - avg) * qty if last is not None and qty else Decimal(0)
        out.append({"sleeve": r["sleeve"], "symbol": r["symbol"], "interval": r["interval"], "strategy": r["strategy"],
                    "halted_reason": r["halted_reason"], "quantity": _num(qty), "avg_price": _num(avg),
                    "last_close": _num(last), "unrealized_pnl": _num(unrealized),
                    "last_decision": {"time": _ts(r["decided_at"]), "action": r["action"], "reason": r["reason"]}
                    if r["decided_at"] else None})
    return out


def open_orders(conn) -> list[dict]:
    rows = _rows(conn, """
        SELECT client_order_id, mode, sleeve, symbol, side, type, quantity, price, status, attempts, created_at
        FROM trading.orders WHERE status IN ('PENDING_SUBMIT', 'NEW', 'PARTIALLY_FILLED') ORDER BY created_at""")
    return [{**r, "quantity": _num(r["quantity"]), "price": _num(r["price"]), "created_at": _ts(r["created_at"])}
            for r in rows]


def kill_switches(conn) -> list[dict]:
    """The kill-switch state per trading mode (a mode without a row is ACTIVE)."""
    rows = _rows(conn, """
        SELECT substr(key, length('kill_switch:') + 1) AS mode, value, updated_at
        FROM trading.trader_state WHERE key LIKE 'kill_switch:%' ORDER BY key""")
    return [{"mode": r["mode"], "state": r["value"].get("state", "ACTIVE"), "reason": r["value"].get("reason", ""),
             "by": r["value"].get("by", ""), "updated_at": _ts(r["updated_at"])} for r in rows]


def equity(conn, mode: str, limit: int = 5000) -> dict:
    """The equity curve of one mode and its P&L since the first mark."""
    rows = _rows(conn, """
        SELECT at, equity FROM (SELECT at, equity FROM trading.equity WHERE mode = :m ORDER BY at DESC LIMIT :n) e
        ORDER BY at""", m=mode, n=limit)
    curve = [{"time": _ts(r["at"]), "value": _num(r["equity"])} for r in rows]
    first = conn.execute(sa.text("SELECT equity FROM trading.equity WHERE mode = :m ORDER BY at LIMIT 1"), {"m": mode}).scalar()
    last = rows[-1]["equity"] if rows else None
    pnl = (last - first) if first is not None and last is not None else None
    return {"mode": mode, "curve": curve, "start": _num(first), "last": _num(last), "pnl": _num(pnl),
            "pnl_pct": _num(pnl / first) if pnl is not None and first else None}


def active_mode(conn) -> str:
    """The mode the trader ran last (newest order or equity mark), ``paper`` when it never ran."""
    return conn.execute(sa.text("""
        SELECT mode FROM (SELECT mode, created_at AS t FROM trading.orders
                          UNION ALL SELECT mode, at FROM trading.equity) x ORDER BY t DESC LIMIT 1""")).scalar() or "paper"


def overview(conn, mode: str | None = None) -> dict:
    """Everything the page shows besides the candles: one round trip from the browser."""
    mode = mode or active_mode(conn)
    return {"mode": mode, "series": list_series(conn), "positions": positions(conn), "open_orders": open_orders(conn),
            "kill_switches": kill_switches(conn), "equity": equity(conn, mode)}
