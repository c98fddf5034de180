"""The Trading page's reads of the pipeline's PostgreSQL: plain SQL in, plain JSON-ready dicts out.

Every function takes an open SQLAlchemy ``Connection`` and only reads. Decimals become floats and
times epoch seconds (what the chart library wants); nothing here knows about HTTP or Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa


MAX_CANDLES = 2000


def _num(v) -> float | None:
    return None if v is None else float(v)


def _ts(v: datetime | None) -> int | None:
    return None if v is None else int(v.timestamp())


def _rows(conn, sql: str, **params) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]


LIVE_WINDOW = timedelta(days=30)   # a series counts as streamed when candles arrived live within this window ...
# ... each ingested at most 10 minutes after it closed: klinepipe.quality's rule, written when the candle is
# (market.arrived_live in sql/020_series_summary.sql)


# One row per stored series, O(series) whatever the history (sql/020 and 032): the counts (open candles, the bars
# being built, too), write times and newest open time from market.series_summary, kept by the merge and triggers;
# the newest candle by its key (the summary's newest open time; LIMIT 1 keeps it a lookup per series, which the
# planner would otherwise be free to turn into a join scanning every candle), the newest
# closed one and the newest feature row by a backward scan of the key within RECENT of it (then, only if none is
# there, of the whole series). Bounded by a time on both sides, each lookup is pruned at run time to the partitions of
# that range (open above, it would also probe every partition made since, and the DEFAULT one); unbounded, it probed
# every partition, since the DEFAULT partition keeps PostgreSQL from scanning partitions in order (sql/032). A
# feature row newer than every candle (its candles deleted by hand) is not shown as the newest while an older one is
# within RECENT.
RECENT = "interval '31 days'"
SERIES_SQL = f"""
    SELECT s.symbol, s.interval, s.candles, s.candles - s.open_candles AS closed, s.features, s.newest_ingested_at,
           now() AS db_now,
           coalesce(s.last_live_ingested_at > now() - :live_window, false) AS arrived_live,
           n.open_time AS newest_open_time, n.source AS newest_source,
           coalesce(nc.open_time, nco.open_time) AS newest_closed_open_time,
           coalesce(nc.close_time, nco.close_time) AS newest_closed_close_time,
           coalesce(nf.open_time, nfo.open_time) AS newest_feature_open_time
    FROM market.series_summary s
    LEFT JOIN LATERAL (SELECT open_time, source FROM market.candles c WHERE c.symbol = s.symbol AND c.interval = s.interval
                       AND c.open_time = s.newest_open_time LIMIT 1) n ON true
    LEFT JOIN LATERAL (SELECT open_time, close_time FROM market.candles c WHERE c.symbol = s.symbol
                       AND c.interval = s.interval AND c.is_closed AND s.candles > s.open_candles
                       AND c.open_time <= s.newest_open_time AND c.open_time > s.newest_open_time - {RECENT}
                       ORDER BY open_time DESC LIMIT 1) nc ON true
    LEFT JOIN LATERAL (SELECT open_time, close_time FROM market.candles c WHERE c.symbol = s.symbol
                       AND c.interval = s.interval AND c.is_closed AND s.candles > s.open_candles AND nc.open_time IS NULL
                       ORDER BY open_time DESC LIMIT 1) nco ON true
    LEFT JOIN LATERAL (SELECT open_time FROM market.features f WHERE f.symbol = s.symbol AND f.interval = s.interval
                       AND s.features > 0 AND f.open_time <= s.newest_open_time
                       AND f.open_time > s.newest_open_time - {RECENT}
                       ORDER BY open_time DESC LIMIT 1) nf ON true
    LEFT JOIN LATERAL (SELECT open_time FROM market.features f WHERE f.symbol = s.symbol AND f.interval = s.interval
                       AND s.features > 0 AND nf.open_time IS NULL ORDER BY open_time DESC LIMIT 1) nfo ON true
    WHERE s.candles > 0
    ORDER BY s.symbol, s.interval"""


def series_summary(conn, live_window: timedelta = timedelta(days=30)) -> list[dict]:
    """``SERIES_SQL``'s rows: what the Trading page's series list and the ETL metrics show per series. When
    market.candles was written outside the merge (SQL by hand), the summary is rebuilt first, once."""
    _fresh_summary(conn)
    return _rows(conn, SERIES_SQL, live_window=live_window)


def _fresh_summary(conn) -> None:
    """Rebuild market.series_summary first, once, when market.candles was written outside the merge."""
    if conn.execute(sa.text("SELECT EXISTS (SELECT FROM market.series_summary_stale)")).scalar():
        with conn.engine.begin() as writer:  # its own transaction, committed before the caller's read
            writer.execute(sa.text("SELECT market.rebuild_series_summary()"))


def list_series(conn, streams: Iterable[tuple[str, str]] = ()) -> list[dict]:
    """Every stored series with its size and freshness: newest candle, its age, ingest lag, and whether it is
    being streamed (``streams``: the configured subscriptions, or candles that arrived live): only a streamed
    series is expected to be fresh; imported history is not stale, whatever its age."""
    subscribed = set(streams)
    return [{
        "symbol": r["symbol"], "interval": r["interval"], "candles": r["candles"],
        "newest_open_time": _ts(r["newest_open_time"]),
        "newest_closed_age_s": (r["db_now"] - r["newest_closed_close_time"]).total_seconds()
        if r["newest_closed_close_time"] else None,
        "ingest_lag_s": (r["db_now"] - r["newest_ingested_at"]).total_seconds(),
        "streamed": bool(r["arrived_live"] or (r["symbol"], r["interval"]) in subscribed),
        "replayed": r["newest_source"] == "replay",  # its newest candle came from a replay (the demo market): not live prices
    } for r in series_summary(conn, LIVE_WINDOW)]


def candles(conn, symbol: str, interval: str, limit: int = 500) -> list[dict]:
    """The newest ``limit`` candles of one series, oldest first."""
    rows = _rows(conn, """
        SELECT open_time, open, high, low, close, volume, is_closed FROM (
            SELECT * FROM market.candles WHERE symbol = :s AND interval = :i ORDER BY open_time DESC LIMIT :n
        ) c ORDER BY open_time""", s=symbol, i=interval, n=min(max(limit, 1), MAX_CANDLES))
    return [{"time": _ts(r["open_time"]), "open": _num(r["open"]), "high": _num(r["high"]), "low": _num(r["low"]),
             "close": _num(r["close"]), "volume": _num(r["volume"]), "closed": r["is_closed"]} for r in rows]


def trades(conn, symbol: str, interval: str, since: datetime | None, mode: str | None = None) -> list[dict]:
    """Fills of the sleeves that trade this series (``symbol`` at ``interval``; one mode when given) from
    ``since`` on: the entries and exits to mark on its chart. A 1m sleeve's fills are not the 1h chart's."""
    rows = _rows(conn, """
        SELECT f.filled_at, f.side, f.quantity, f.price, f.fee, f.fee_asset, o.sleeve, o.mode, o.client_order_id
        FROM trading.fills f JOIN trading.orders o USING (client_order_id)
        WHERE f.symbol = :s AND (CAST(:since AS timestamptz) IS NULL OR f.filled_at >= :since)
          AND EXISTS (SELECT 1 FROM trading.sleeves sl WHERE sl.mode = o.mode AND sl.sleeve = o.sleeve AND sl.symbol = :s AND sl.interval = :i)
          AND (CAST(:mode AS text) IS NULL OR o.mode = :mode)
        ORDER BY f.filled_at, f.id""", s=symbol, i=interval, since=since, mode=mode)
    return [{"time": _ts(r["filled_at"]), "side": r["side"], "quantity": _num(r["quantity"]), "price": _num(r["price"]),
             "fee": _num(r["fee"]), "fee_asset": r["fee_asset"], "sleeve": r["sleeve"], "mode": r["mode"],
             "client_order_id": r["client_order_id"]} for r in rows]


MAX_DECIMALS = 8  # Binance's prices and quantities have at most 8 decimals


# The newest :n candles of each symbol, whatever their interval: the newest :n of each of its series (a backward scan
# of the primary key each, within :n intervals of the series' newest open time so that only those partitions are
# read; the series from market.series_summary), then the newest :n of those. O(series): ordering
# all of a symbol's candles by open_time alone would read its whole history (the key is symbol, interval, open_time).
_PRECISION_SQL = """
    SELECT s.symbol, max(greatest(min_scale(c.open), min_scale(c.high), min_scale(c.low), min_scale(c.close))) AS price_dp,
           max(min_scale(c.volume)) AS qty_dp
    FROM unnest(CAST(:symbols AS text[])) AS s(symbol)
    CROSS JOIN LATERAL (
        SELECT open, high, low, close, volume FROM market.series_summary ss
        CROSS JOIN LATERAL (SELECT open_time, open, high, low, close, volume FROM market.candles m
                            WHERE m.symbol = ss.symbol AND m.interval = ss.interval
                            AND m.open_time <= ss.newest_open_time
                            AND m.open_time > ss.newest_open_time - :n * market.interval_span(ss.interval)
                            ORDER BY open_time DESC LIMIT :n) x
        WHERE ss.symbol = s.symbol ORDER BY open_time DESC LIMIT :n) c
    GROUP BY s.symbol"""


def precision(conn, symbols: Iterable[str], sample: int = 500) -> dict[str, dict[str, int]]:
    """Decimals to show per symbol: ``price`` (its tick size) and ``quantity`` (its step size).

    Exchange filters are not stored in the database, so both are derived from stored values: the most
    decimals any of the newest ``sample`` candles' prices needs (Binance pads to 8: ``0.25010000`` needs 4),
    and for quantities the same over candle volumes and the symbol's fills and orders (each a multiple of the
    step). ALGOUSDT at ~0.25 shows 0.2501 and 0.2505, not 0.25 twice; BTCUSDT shows cents."""
    symbols = sorted(set(symbols))
    if not symbols:
        return {}
    _fresh_summary(conn)
    price = {r["symbol"]: (r["price_dp"], r["qty_dp"]) for r in _rows(conn, _PRECISION_SQL, symbols=symbols, n=sample)}
    qty = {r["symbol"]: r["dp"] for r in _rows(conn, """
        SELECT symbol, max(min_scale(quantity)) AS dp FROM (
            SELECT symbol, quantity FROM trading.fills WHERE symbol = ANY(CAST(:symbols AS text[]))
            UNION ALL SELECT symbol, quantity FROM trading.orders WHERE symbol = ANY(CAST(:symbols AS text[]))) q
        GROUP BY symbol""", symbols=symbols)}
    out = {}
    for s in symbols:
        price_dp, volume_dp = price.get(s, (None, None))
        out[s] = {"price": min(price_dp if price_dp is not None else 2, MAX_DECIMALS),
                  "quantity": min(max(volume_dp or 0, qty.get(s) or 0), MAX_DECIMALS)}
    return out


# Each sleeve's position valued at its series' newest close: the candle at the summary's newest open time (one key
# lookup in one partition; a backward scan with LIMIT 1 probed every partition, see SERIES_SQL).
POSITIONS_SQL = """
        SELECT s.mode, s.sleeve, s.symbol, s.interval, s.strategy, s.halted_reason, p.quantity, p.avg_price,
               c.close AS last_close, g.open_time AS decided_at, g.action, g.reason
        FROM trading.sleeves s JOIN trading.positions p USING (mode, sleeve)
        LEFT JOIN market.series_summary ss ON ss.symbol = s.symbol AND ss.interval = s.interval
        LEFT JOIN LATERAL (SELECT close FROM market.candles m WHERE m.symbol = s.symbol AND m.interval = s.interval
                           AND m.open_time = ss.newest_open_time LIMIT 1) c ON true
        LEFT JOIN LATERAL (SELECT open_time, action, reason FROM trading.signals x WHERE x.mode = s.mode AND x.sleeve = s.sleeve
                           ORDER BY open_time DESC LIMIT 1) g ON true
        WHERE CAST(:mode AS text) IS NULL OR s.mode = :mode
        ORDER BY s.sleeve, s.mode"""


def positions(conn, mode: str | None = None) -> list[dict]:
    """Each sleeve's position (of one mode when given: sleeves, positions, signals are per mode), valued at its
    series' newest close, and its last decision."""
    rows = _rows(conn, POSITIONS_SQL, mode=mode)
    out = []
    for r in rows:
        qty, avg, last = r["quantity"], r["avg_price"], r["last_close"]
        unrealized = (last - avg) * qty if last is not None and qty else Decimal(0)
        out.append({"mode": r["mode"], "sleeve": r["sleeve"], "symbol": r["symbol"], "interval": r["interval"], "strategy": r["strategy"],
                    "halted_reason": r["halted_reason"], "quantity": _num(qty), "avg_price": _num(avg),
                    "last_close": _num(last), "unrealized_pnl": _num(unrealized),
                    "last_decision": {"time": _ts(r["decided_at"]), "action": r["action"], "reason": r["reason"]}
                    if r["decided_at"] else None})
    return out


def open_orders(conn) -> list[dict]:
    rows = _rows(conn, """
        SELECT client_order_id, mode, sleeve, symbol, side, type, quantity, price, status, attempts, created_at
        FROM trading.orders WHERE status IN ('PENDING_SUBMIT', 'NEW', 'PARTIALLY_FILLED', 'PENDING_NEW') ORDER BY created_at""")
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


def active_mode(conn, default: str = "paper") -> str:
    """The mode the trader ran last (newest order or equity mark), ``default`` when it never ran."""
    return conn.execute(sa.text("""
        SELECT mode FROM (SELECT mode, created_at AS t FROM trading.orders
                          UNION ALL SELECT mode, at FROM trading.equity) x ORDER BY t DESC LIMIT 1""")).scalar() or default


def overview(conn, mode: str | None = None, streams: Iterable[tuple[str, str]] = (), default_mode: str = "paper") -> dict:
    """Everything the page shows besides the candles: one round trip from the browser."""
    mode = mode or active_mode(conn, default_mode)
    series, held, orders = list_series(conn, streams), positions(conn, mode), open_orders(conn)
    symbols = {x["symbol"] for x in (*series, *held, *orders)}
    return {"mode": mode, "series": series, "positions": held, "open_orders": orders,
            "kill_switches": kill_switches(conn), "equity": equity(conn, mode), "precision": precision(conn, symbols)}
