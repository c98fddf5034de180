"""Closed candles of one series from PostgreSQL (``market.candles``), as a backtest candle frame."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from trader.backtest.candles import CANDLE_COLUMNS, normalise_candles

_QUERY = sa.text("""
SELECT (extract(epoch FROM open_time) * 1000)::bigint AS open_time,
       open::float8, high::float8, low::float8, close::float8, volume::float8
FROM market.candles
WHERE symbol = :symbol AND interval = :interval AND is_closed
  AND open_time >= coalesce(CAST(:start AS timestamptz), '-infinity')
  AND open_time < coalesce(CAST(:end AS timestamptz), 'infinity')
ORDER BY open_time
""")


def load_candles_db(database_url: str, symbol: str, interval: str, start: datetime | None = None,
                    end: datetime | None = None) -> pd.DataFrame:
    """Closed candles with ``start <= open_time < end`` (bounds optional), oldest first."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(_QUERY, {"symbol": symbol.upper(), "interval": interval, "start": start, "end": end}).fetchall()
    finally:
        engine.dispose()
    if not rows:
        raise LookupError(f"no closed candles for {symbol.upper()} {interval} in [{start}, {end}) in market.candles")
    frame = pd.DataFrame(rows, columns=list(CANDLE_COLUMNS))
    return normalise_candles(frame.astype({"open_time": np.int64, **{c: np.float64 for c in CANDLE_COLUMNS[1:]}}))
