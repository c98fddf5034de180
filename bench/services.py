"""Embedded services for benchmarks: a throw-away PostgreSQL database and a tansu broker (or the env's)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa

from klinepipe.db import apply_migrations, ensure_database, make_engine
from devstack.embedded import start_broker, start_postgres


@contextlib.contextmanager
def services():
    """Yield ``(database_url, bootstrap_servers)`` on fresh embedded services (or ``DATABASE_URL``/``KAFKA_BOOTSTRAP_SERVERS``)."""
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database())
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            broker = start_broker()
            stack.callback(broker.stop)
            bootstrap = broker.bootstrap_servers
        yield url, bootstrap


@contextlib.contextmanager
def database():
    """Yield the URL of a fresh, migrated database on an embedded PostgreSQL (or on ``DATABASE_URL``'s server)."""
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
        yield url


class CpuBudget:
    """CPU seconds spent while it was open: by this process (all its threads), by PostgreSQL's processes and by
    the broker's, read from /proc. With every part of a run on this machine, their sum over the core count is
    a floor under its wall time: how fast a run could be if nothing waited on anything."""

    def __enter__(self) -> CpuBudget:
        self._start, self.seconds = _cpu_by_role(), {}
        return self

    def __exit__(self, *exc) -> None:
        end = _cpu_by_role()
        self.seconds = {role: end.get(role, 0.0) - self._start.get(role, 0.0) for role in ("python", "postgres", "broker")}

    def line(self, work: int, unit: str) -> str:
        total, cores = sum(self.seconds.values()), os.cpu_count() or 1
        parts = ", ".join(f"{role} {s:.2f}s" for role, s in self.seconds.items())
        return (f"CPU used: {parts} = {total:.2f}s; on {cores} cores no run can take under {total / cores:.2f}s"
                f" ({work / (total / cores):,.0f} {unit}/s at most)")


def _cpu_by_role() -> dict[str, float]:
    tick, me, out = os.sysconf("SC_CLK_TCK"), os.getpid(), {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        role = "python" if int(pid) == me else "postgres" if name.startswith("postgres") else "broker" if name.startswith("tansu") else None
        if role:
            out[role] = out.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out
