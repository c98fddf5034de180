"""PostgreSQL access: engines and the numbered migrations in ``sql/``."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_MIGRATION_LOCK = 7_241_001  # pg_advisory_xact_lock key: one migrator at a time

# Chunk size for psycopg2 ``copy_expert`` from a buffer (its default is 8 KiB). Each chunk drops and
# retakes the GIL; on a worker thread beside a busy parser every retake can wait a whole switch interval
# (5 ms), which made COPYs from the ingest's merge thread 3x slower than alone.
COPY_CHUNK = 4 << 20


def make_engine(url: str, **kwargs) -> Engine:
    """An engine on psycopg2 for a ``postgresql://`` URL (any driver suffix is normalised)."""
    u = sa.engine.make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+psycopg2")
    return sa.create_engine(u, pool_pre_ping=True, **kwargs)


@contextmanager
def raw_transaction(engine: Engine) -> Iterator:
    """One transaction on a raw psycopg2 connection of ``engine`` (for COPY and ``execute_values``): the cursor is
    committed when the block ends, rolled back when it raises, and the connection goes back to the pool either way."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            yield cur
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


def apply_migrations(engine: Engine, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply every not-yet-applied ``NNN_name.sql`` in order; return the names applied now.

    Each file runs in its own transaction together with its record in ``etl.schema_migrations``,
    under an advisory lock, so concurrent starts are safe and a failed file leaves no trace.
    """
    files = sorted(p for p in sql_dir.glob("[0-9][0-9][0-9]_*.sql"))
    applied: list[str] = []
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS etl"))
        conn.execute(
            sa.text(
                "CREATE TABLE IF NOT EXISTS etl.schema_migrations ("
                " name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
        )
    for path in files:
        body = path.read_text()
        checksum = hashlib.sha256(body.encode()).hexdigest()
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            done = conn.execute(
                sa.text("SELECT checksum FROM etl.schema_migrations WHERE name = :n"), {"n": path.name}
            ).scalar()
            if done is not None:
                if done != checksum:
                    log.warning("migration %s changed after it was applied; not re-running it", path.name)
                continue
            with conn.connection.cursor() as cur:  # no parameters: a '%' in the SQL (format()) stays literal
                cur.execute(body)
            conn.execute(
                sa.text("INSERT INTO etl.schema_migrations (name, checksum) VALUES (:n, :c)"),
                {"n": path.name, "c": checksum},
            )
            applied.append(path.name)
            log.info("applied migration %s", path.name)
    return applied


def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` on the server of ``admin_url`` when it does not exist."""
    engine = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
