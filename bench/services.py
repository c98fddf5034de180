"""Embedded services for benchmarks: a throw-away PostgreSQL database and a tansu broker (or the env's)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa

from klinepipe.db import apply_migrations, ensure_database, make_engine
from klinepipe.embedded import start_broker, start_postgres


@contextlib.contextmanager
def services():
    """Yield ``(database_url, bootstrap_servers)`` on fresh embedded services (or ``DATABASE_URL``/``KAFKA_BOOTSTRAP_SERVERS``)."""
    with contextlib.ExitStack() as stack:
        admin = os.environ.get("DATABASE_URL")
        if admin:
            admin = sa.engine.make_url(admin).set(database="postgres").render_as_string(hide_password=False)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kp-bench-")))
            server = start_postgres(tmp / "pg")
            stack.callback(server.cleanup)
            admin = server.get_uri("postgres")
        name = f"kp_bench_{uuid.uuid4().hex[:8]}"
        ensure_database(admin, name)
        url = sa.engine.make_url(admin).set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
        apply_migrations(engine)
        engine.dispose()
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            broker = start_broker()
            stack.callback(broker.stop)
            bootstrap = broker.bootstrap_servers
        yield url, bootstrap
