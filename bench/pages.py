"""Page-refresh timings for ``bench storm``: the Trading page's endpoints, the ETL metrics and the README's SQL.

Each "refresh" is what one request runs against PostgreSQL, through the same functions the Airflow plugin
calls (``klinepipe_trading.queries``, ``klinepipe_trading.etl_metrics``), on one open connection.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable

import sqlalchemy as sa

from klinepipe_trading import etl_metrics, queries

GOAL_P95_MS = 100.0

# The README's "Try:" examples (Quick start), verbatim but for the symbol and the month, which the bench names. The
# month's bounds are constants, as in the README ('2024-03-01' .. '2024-04-01'): PostgreSQL then prunes to the month's
# partition while planning and reads it in key order; written as :a + interval '1 month' (a STABLE expression) the
# pruning waited for execution and the plan sorted the month (74 ms against 30 ms at 20M candles).
README_SQL = {
    "README: newest 5 candles": """SELECT c.symbol, c.interval, c.open_time, c.open, c.high, c.low, c.close, c.volume,
        c.is_closed, c.source FROM market.series_summary s CROSS JOIN LATERAL (SELECT * FROM market.candles c
        WHERE c.symbol = s.symbol AND c.interval = s.interval ORDER BY open_time DESC LIMIT 5) c
        ORDER BY c.open_time DESC LIMIT 5""",
    "README: newest 5 feature rows": """SELECT open_time, close, sma_10, sma_30, rsi_14, macd FROM market.features
        WHERE symbol = :s AND interval = '1m' ORDER BY open_time DESC LIMIT 5""",
    "README: one month of features": """SELECT open_time, close, sma_10, sma_30, rsi_14, macd FROM market.features
        WHERE symbol = :s AND interval = '1m' AND open_time >= :a AND open_time < :b ORDER BY open_time""",
    "README: orders": """SELECT client_order_id, side, quantity, price, status, signal_open_time
        FROM trading.orders ORDER BY signal_open_time DESC""",
}


def add_sleeve(engine, symbol: str) -> None:
    """One paper sleeve with a position on ``symbol``, so the positions query does its per-sleeve lookups."""
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO trading.sleeves (mode, sleeve, symbol, interval, strategy)"
                          " VALUES ('paper', :sl, :s, '1m', 'sma_cross')"), {"sl": f"{symbol}:1m:sma_cross", "s": symbol})
        c.execute(sa.text("INSERT INTO trading.positions (mode, sleeve, symbol, quantity, avg_price)"
                          " VALUES ('paper', :sl, :s, 0.01, 1)"), {"sl": f"{symbol}:1m:sma_cross", "s": symbol})


def refreshes(symbol: str, month) -> dict[str, Callable]:
    """name -> fn(conn): one request's database work each."""
    out = {
        "Trading page /overview": lambda c: queries.overview(c, "paper"),
        "Trading page /candles (500)": lambda c: queries.candles(c, symbol, "1m", 500),
        "Trading page /trades": lambda c: queries.trades(c, symbol, "1m", None, "paper"),
        "metrics /klinepipe/metrics": lambda c: etl_metrics.render(etl_metrics.read_snapshot(c)),
    }
    params = {"s": symbol, "a": month, "b": _next_month(month)}
    for name, sql in README_SQL.items():
        out[name] = lambda c, sql=sql: c.execute(sa.text(sql), params).all()
        out[f"{name} (psql)"] = lambda c, sql=sql: _as_psql_receives(c, sql, params)
    return out


def _next_month(month):
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def _as_psql_receives(conn, sql: str, params: dict) -> int:
    """The query's rows as text over the wire, what a ``psql`` user waits for (without its rendering): PostgreSQL's
    work and the transfer, none of Python's decoding into row objects. Returns the bytes received."""
    cur = conn.connection.dbapi_connection.cursor()
    query = cur.mogrify(sa.text(sql).compile(dialect=conn.dialect).string, params)
    sink = io.StringIO()
    cur.copy_expert(f"COPY ({query.decode()}) TO STDOUT", sink)
    return sink.tell()


# a README query whose answer is this many rows is an export, not a page: its Python figure is shown, not judged
EXPORT_ROWS = 1000


# What the README showed before (a sort of every candle), timed for comparison, not against the goal.
BEFORE = {"before: README newest 5 candles": """SELECT symbol, interval, open_time, open, high, low, close, volume,
    is_closed, source FROM market.candles ORDER BY open_time DESC LIMIT 5"""}


def time_pages(engine, symbol: str, month, runs: int = 50, budget_s: float = 20.0) -> bool:
    """Print p50/p95 per refresh over ``runs`` (after one warm-up each; fewer when they pass ``budget_s``, said so);
    True when every p95 meets the goal."""
    ok = True
    before = {name: lambda c, sql=sql: c.execute(sa.text(sql)).all() for name, sql in BEFORE.items()}
    with engine.connect() as conn:
        for name, fn in {**refreshes(symbol, month), **before}.items():
            answer = fn(conn)
            conn.rollback()
            export = isinstance(answer, list) and len(answer) > EXPORT_ROWS
            ms: list[float] = []
            start = time.perf_counter()
            while len(ms) < runs and (len(ms) < 5 or time.perf_counter() - start < budget_s):
                t = time.perf_counter()
                fn(conn)
                ms.append((time.perf_counter() - t) * 1000)
                conn.rollback()
            p50, p95 = statistics.median(ms), statistics.quantiles(ms, n=20, method="inclusive")[18]
            judged = name not in before and not export
            verdict = ("not a goal" if name in before else f"not a goal: {len(answer):,} rows decoded by Python; see"
                       " (psql)" if export else "pass" if p95 < GOAL_P95_MS else "FAIL")
            ok &= not judged or p95 < GOAL_P95_MS
            print(f"  {name:41s}: p50 {p50:8.1f} ms, p95 {p95:8.1f} ms over {len(ms)} ({verdict}: goal p95 < {GOAL_P95_MS:.0f} ms)")
    return ok
