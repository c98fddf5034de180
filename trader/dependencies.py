"""PostgreSQL and Binance as dependencies: classify what went wrong, wait a bounded time at start, ride out outages.

* At start, ``wait_for_database`` / ``wait_for`` retry a dependency that is *down* (refused, DNS, starting up,
  not migrated yet) with capped backoff for at most ``TRADER_STARTUP_WAIT`` seconds, then give up with one
  line (exit 1). A *bad value* (a DSN that is not one, a database that does not exist, a wrong password) is
  reported at once (exit 2): waiting cannot fix it.
* While running, ``Outages`` turns a stream of failures into ONE line when a dependency goes down and one when
  it is back (with how long it was away), keeps ``trader_dependency_up`` / ``trader_outages_total`` for the
  metrics, and ``Backoff`` spaces the retries (doubling, capped at ``TRADER_RETRY_MAX_DELAY``).
Messages never contain a password: psycopg2's text is reduced to its first line, and the DSN is never printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg2

from trader.errors import ConfigError, DependencyDown, FatalError, TraderError

SCHEMA_MIGRATION = "017_feature_specs.sql"  # the newest migration this trader needs


class BadDatabaseURL(ConfigError):
    """DATABASE_URL names something that cannot work (exit 2)."""


def pg_reason(exc: Exception) -> str:
    """psycopg2's message, first line only (the rest repeats the host and port)."""
    text = str(exc).strip().splitlines()
    return text[0].removeprefix("FATAL:").strip() if text else type(exc).__name__


def classify_pg(exc: Exception) -> TraderError:
    """A psycopg2 connection error as ``BadDatabaseURL`` (fix the setting) or ``DependencyDown`` (wait)."""
    reason = pg_reason(exc)
    if isinstance(exc, psycopg2.ProgrammingError) or "invalid dsn" in reason or "invalid connection option" in reason:
        return BadDatabaseURL(f"DATABASE_URL is not a PostgreSQL URL ({reason.split(':')[0]}); "
                              "expected postgresql://user:password@host:5432/database")
    if "does not exist" in reason and "database" in reason:
        return BadDatabaseURL(f"DATABASE_URL: {reason}; create it or name another database")
    if "password authentication failed" in reason or "no password supplied" in reason or "role" in reason and "does not exist" in reason:
        return BadDatabaseURL(f"DATABASE_URL: {reason}")
    return DependencyDown(f"PostgreSQL (DATABASE_URL) unreachable: {reason}")


def check_schema(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('etl.schema_migrations') IS NOT NULL")
        migrated = cur.fetchone()[0]
        if migrated:
            cur.execute("SELECT count(*) FROM etl.schema_migrations WHERE name = %s", (SCHEMA_MIGRATION,))
            migrated = cur.fetchone()[0] == 1
    conn.rollback()
    if not migrated:
        raise DependencyDown(f"DATABASE_URL: the database is not migrated ({SCHEMA_MIGRATION} not applied); "
                             "`make run` applies sql/ at start, or run klinepipe.db.apply_migrations")


@dataclass
class Backoff:
    """1 s, 2 s, 4 s ... capped at ``max_delay``; ``reset`` after a success."""

    max_delay: float = 30.0
    first: float = 1.0
    _next: float = field(default=0.0, init=False)

    def delay(self) -> float:
        self._next = min(self.max_delay, self._next * 2 if self._next else self.first)
        return self._next

    def reset(self) -> None:
        self._next = 0.0


def wait_for(what: Callable, classify: Callable[[Exception], TraderError], wait_s: float, max_delay: float,
             sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
    """``what()``, retried while it fails with a dependency-down error, for at most ``wait_s`` seconds."""
    deadline, backoff = clock() + wait_s, Backoff(max_delay)
    while True:
        try:
            return what()
        except Exception as exc:  # noqa: BLE001 - classified below; fatal kinds are re-raised at once
            err = classify(exc)
            if isinstance(err, FatalError):
                raise err from None
            if clock() >= deadline:
                raise DependencyDown(f"{err} (gave up after waiting {wait_s:g} s, TRADER_STARTUP_WAIT)") from None
            sleep(min(backoff.delay(), max(deadline - clock(), 0.01)))


def wait_for_database(connect: Callable, wait_s: float, max_delay: float) -> None:
    """Connect and check the schema, waiting up to ``wait_s`` seconds for a server that is down or unmigrated."""

    def attempt():
        conn = connect()
        try:
            check_schema(conn)
        finally:
            conn.close()

    wait_for(attempt, lambda e: e if isinstance(e, TraderError) else classify_pg(e), wait_s, max_delay)


class Outages:
    """One line per outage of each dependency (not per retry), one on recovery; the metrics' numbers."""

    def __init__(self, emit: Callable[[str], None], stats=None, clock: Callable[[], float] = time.monotonic) -> None:
        self._emit, self._stats, self._clock = emit, stats, clock  # stats: a trader.metrics.LoopStats
        self.down_since: dict[str, float] = {}
        self.total: dict[str, int] = {"postgres": 0, "binance": 0}

    def up(self, name: str) -> bool:
        return name not in self.down_since

    def failed(self, name: str, reason: str) -> None:
        if name in self.down_since:
            return
        self.down_since[name] = self._clock()
        self.total[name] = self.total.get(name, 0) + 1
        if self._stats is not None:
            self._stats.dependency_up[name], self._stats.outages[name] = False, self.total[name]
        self._emit(f"{name} down: {reason}; retrying with backoff up to TRADER_RETRY_MAX_DELAY, not trading meanwhile")

    def recovered(self, name: str) -> None:
        since = self.down_since.pop(name, None)
        if since is not None:
            if self._stats is not None:
                self._stats.dependency_up[name] = True
            self._emit(f"{name} back after {self._clock() - since:.0f} s; trading resumes")
