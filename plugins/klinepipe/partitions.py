"""Partitions of ``market.candles`` and ``market.features`` made ahead of the data (see sql/030).

A row for a month without a partition is never refused: it waits in the table's DEFAULT partition, and
``ensure_partitions`` (any caller, any time) moves it into a partition of its own. So the callers here only
keep that default small and the partitions ahead of the data: the ingest DAG for this month and the next
``AHEAD_MONTHS``, a history load for its range, a file import after it loaded.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

AHEAD_MONTHS = 2
LOCK_TIMEOUT_MS = 5_000  # a loader's open transaction holds the default partition: try again next run


def ensure_partitions(engine: Engine, first: datetime | None = None, last: datetime | None = None) -> int | None:
    """Partitions for [first, last] and for every row waiting in a default partition; how many were made.

    None when a lock was not granted within ``LOCK_TIMEOUT_MS`` (the rows stay in the default partition,
    queryable and safe; the next call moves them): this never fails its caller's load."""
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            made = conn.execute(sa.text("SELECT market.ensure_history_partitions(:a, :b)"),
                                {"a": first, "b": last}).scalar_one()
    except OperationalError as exc:
        if getattr(exc.orig, "pgcode", None) != "55P03":  # lock_not_available
            raise
        log.warning("history partitions not made this time (a writer holds the default partition): %s",
                    str(exc.orig).strip())
        return None
    if made:
        log.info("made %d history partition(s) of market.candles / market.features", made)
    return made


def ensure_partitions_ahead(engine: Engine, now: datetime | None = None) -> int | None:
    """This month's partitions and the next ``AHEAD_MONTHS``' (and the default partition's rows moved)."""
    now = now or datetime.now(timezone.utc)
    return ensure_partitions(engine, now, now + timedelta(days=31 * AHEAD_MONTHS))
