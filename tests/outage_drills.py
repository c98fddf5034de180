"""Outage drills: a real embedded PostgreSQL that a test stops and starts again at the same address, and the
log lines a drill counts (one per outage, not one per retry), and how long every drill's outage lasts.

``KLINEPIPE_DRILL_OUTAGE_S`` (default 20 s) sets it for every drill in the suite: long enough that each part's
capped backoff retries several times while the dependency is down; ``KLINEPIPE_DRILL_OUTAGE_S=60`` runs issue 12's
60-second drills as written."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import sqlalchemy as sa

from klinepipe.db import apply_migrations, ensure_database, make_engine
from devstack.embedded import start_postgres

OUTAGE_S = float(os.environ.get("KLINEPIPE_DRILL_OUTAGE_S", "20"))


class StoppablePostgres:
    """pgserver in ``datadir`` (unix socket); ``stop``/``start`` run ``pg_ctl`` so the socket path stays the same."""

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self._server = start_postgres(datadir)
        self.socket_dir = sa.engine.make_url(self._server.get_uri("postgres")).query["host"]
        self.running = True

    def url(self, database: str) -> str:
        return self._server.get_uri(database)

    def migrated_database(self, name: str) -> str:
        ensure_database(self.url("postgres"), name)
        engine = make_engine(self.url(name))
        apply_migrations(engine)
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        self._pg_ctl(["-m", "fast", "-w", "stop"])
        self.running = False

    def start(self) -> None:
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.datadir / "log"), "start"])
        self.running = True

    def _pg_ctl(self, args: list[str]) -> None:
        """pgserver's own ``pg_ctl`` runner: as the server's user (``pgserver`` when we are root), output to files
        (a pipe would be held open by the postmaster it starts)."""
        from pgserver._commands import pg_ctl

        user = self._server.system_user
        pg_ctl(args, pgdata=self.datadir, **({"user": user} if user else {}), timeout=60)

    def close(self) -> None:
        if self.running:
            self.stop()
        self._server.cleanup()


class Lines(logging.Handler):
    """Every message logged to the logger it is added to, as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
