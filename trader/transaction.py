"""Transactions on the trader's PostgreSQL connection, and the paper broker's candle reader built on them."""

from __future__ import annotations

from collections.abc import Callable

import psycopg2

from trader import market_reads


class Transaction:
    """One transaction on ``conn``: commit on success, roll back on any exception (a crash loses it whole)."""

    def __init__(self, conn) -> None:
        self._conn = conn

    def __enter__(self):
        self._cur = self._conn.cursor()
        return self._cur

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._conn.commit()
            elif not self._conn.closed:
                try:
                    self._conn.rollback()
                except psycopg2.Error:  # the connection died meanwhile: the original error propagates
                    pass
        finally:
            try:
                self._cur.close()
            except psycopg2.Error:
                pass


def db_candles(connect: Callable, mode: str = "paper"):
    """A ``candles_after`` for the paper broker reading ``market.candles`` on its own connection (the sleeves'
    progress of ``mode``)."""
    holder: list = []

    def candles_after(symbol: str, interval: str, after_ms: int, limit: int, sleeve: str):
        if not holder or holder[0].closed:
            holder[:] = [connect()]
        with Transaction(holder[0]) as cur:
            return market_reads.candles_after(cur, symbol, interval, after_ms, limit, sleeve, mode)

    return candles_after
