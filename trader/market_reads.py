"""What the trader reads of the market tables (``market.features``, ``market.candles``). Every function runs inside the caller's transaction."""

from __future__ import annotations

import logging
from datetime import datetime

import pandas as pd

from trader.market import Candle
from trader.timestamps import from_ms, to_ms

log = logging.getLogger(__name__)
_WAITING_SAID: set = set()  # (symbol, interval, specs) already logged as waiting: one line each, not one per poll


def load_new_features(cur, symbol: str, interval: str, after: datetime | None, history: int,
                      columns: tuple[str, ...], specs: tuple = ()) -> pd.DataFrame:
    """``open_time``, ``close`` and ``columns`` of the feature rows newer than ``after`` plus ``history`` rows before
    them, oldest first. Only the columns a strategy declares are read. Until the features task vouches for every
    one of ``specs`` (``etl.feature_state.spec_set``: computed over the whole history), no rows: nothing is decided
    on a column that is missing or not filled yet (a spec registered moments ago)."""
    wanted = tuple(dict.fromkeys(("open_time", "close", *columns)))
    if waiting := unvouched_specs(cur, specs):
        if (symbol, interval, waiting) not in _WAITING_SAID:
            _WAITING_SAID.add((symbol, interval, waiting))
            log.info("%s %s: waiting for the features task to compute %s", symbol, interval, ", ".join(waiting))
        return pd.DataFrame(columns=list(wanted))
    select = ", ".join(wanted)  # column names from the spec naming rule: plain identifiers
    cur.execute(
        f"""
        (SELECT {select} FROM market.features WHERE symbol = %(s)s AND interval = %(i)s
           AND open_time <= coalesce(%(a)s::timestamptz, '-infinity') ORDER BY open_time DESC LIMIT %(h)s)
        UNION ALL
        (SELECT {select} FROM market.features WHERE symbol = %(s)s AND interval = %(i)s
           AND open_time > coalesce(%(a)s::timestamptz, '-infinity'))
        ORDER BY open_time
        """,
        {"s": symbol, "i": interval, "a": after, "h": history},
    )
    return pd.DataFrame(cur.fetchall(), columns=list(wanted))


def unvouched_specs(cur, specs) -> tuple[str, ...]:
    """The texts of ``specs`` that ``market.features`` is not complete for yet."""
    cur.execute("SELECT spec_set FROM etl.feature_state")
    row = cur.fetchone()
    have = set(row[0].split("; ")) if row is not None and row[0] else set()
    return tuple(s.text for s in specs if s.text not in have)


def newest_candle(cur, symbol: str, interval: str) -> tuple[datetime, datetime] | None:
    """(close_time, ingested_at) of the newest closed candle of the series."""
    cur.execute("SELECT close_time, ingested_at FROM market.candles WHERE symbol = %s AND interval = %s AND is_closed"
                " ORDER BY open_time DESC LIMIT 1", (symbol, interval))
    return cur.fetchone()


def latest_close(cur, symbol: str, interval: str):
    """The close of the newest closed candle of the series (``None``: none yet)."""
    cur.execute("SELECT close FROM market.candles WHERE symbol = %s AND interval = %s AND is_closed"
                " ORDER BY open_time DESC LIMIT 1", (symbol, interval))
    row = cur.fetchone()
    return row[0] if row else None


def candles_after(cur, symbol: str, interval: str, after_ms: int, limit: int, sleeve: str | None = None,
                  mode: str = "paper") -> list[Candle]:
    """Candles opening after ``after_ms``; with ``sleeve``, only those the sleeve has reached: up to the candle
    after the newest one it decided (whose open is the next price), so a paper order never fills in the future."""
    cur.execute(
        "SELECT open_time, open, high, low, close FROM market.candles WHERE symbol = %(s)s AND interval = %(i)s AND open_time > %(a)s"
        " AND (%(sl)s::text IS NULL OR open_time <= (SELECT min(c.open_time) FROM market.candles c WHERE c.symbol = %(s)s"
        "  AND c.interval = %(i)s AND c.open_time > (SELECT last_open_time FROM trading.sleeves WHERE mode = %(m)s AND sleeve = %(sl)s)))"
        " ORDER BY open_time LIMIT %(n)s", {"s": symbol, "i": interval, "a": from_ms(after_ms), "sl": sleeve, "n": limit, "m": mode})
    return [Candle(to_ms(t), o, h, lo, c) for t, o, h, lo, c in cur.fetchall()]
