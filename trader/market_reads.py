"""What the trader reads of the market tables (``market.features``, ``market.candles``). Every function runs inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from trader.market import Candle
from trader.timestamps import from_ms, to_ms


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
        "SELECT open_time, open, high, low FROM market.candles WHERE symbol = %(s)s AND interval = %(i)s AND open_time > %(a)s"
        " AND (%(sl)s::text IS NULL OR open_time <= (SELECT min(c.open_time) FROM market.candles c WHERE c.symbol = %(s)s"
        "  AND c.interval = %(i)s AND c.open_time > (SELECT last_open_time FROM trading.sleeves WHERE mode = %(m)s AND sleeve = %(sl)s)))"
        " ORDER BY open_time LIMIT %(n)s", {"s": symbol, "i": interval, "a": from_ms(after_ms), "sl": sleeve, "n": limit, "m": mode})
    return [Candle(to_ms(t), o, h, lo) for t, o, h, lo in cur.fetchall()]
