"""``make run``: the whole pipeline on one machine, on embedded defaults (composition root).

Starts, in order: PostgreSQL (``DATABASE_URL`` or embedded pgserver under ``.data/pg``), the schema
migrations, a Kafka-API broker (``KAFKA_BOOTSTRAP_SERVERS`` or the embedded tansu), Airflow 3's api-server,
scheduler, dag-processor and triggerer (``AIRFLOW_HOME=.data/airflow``, metadata in the same PostgreSQL), the
streaming sidecar (live Binance when reachable, else a replay of the bundled klines) and the trader in paper
mode -- and supervises them (``devstack.supervisor``): one stack per data directory, a part that dies is
restarted, a crash loop stops the stack (exit 1), nothing outlives it. Ctrl-C or SIGTERM stops every process
it started, Airflow's workers included.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from pgserver.utils import PostmasterInfo

from devstack.airflow_env import AIRFLOW_COMPONENTS, airflow_secrets, airflow_settings, password_file
from devstack.banner import banner, ui_answers
from devstack.embedded import broker_argv, broker_env, free_port, port_is_free, start_postgres, wait_listening
from devstack.restart_recovery import fill_lost_candles, forget_offsets, newest_per_series, replay_resume_point
from devstack.stack_lock import StackLock
from devstack.supervisor import Child, GiveUp, Supervisor, log_limits, private_log
from devstack.watchdog import Watchdog
from klinepipe import connection_file, dsn, logging_setup
from klinepipe.db import apply_migrations, ensure_database, make_engine

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("KLINEPIPE_DATA_DIR", ROOT / ".data")).resolve()
LOGS = DATA / "logs"
AIRFLOW_HOME = DATA / "airflow"
PID_FILE = DATA / "run.pid"


def main() -> int:
    logging_setup.configure("devstack")
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    DATA.mkdir(exist_ok=True)
    LOGS.mkdir(exist_ok=True)
    LOGS.chmod(0o700)  # child logs may name hosts and users; they are the operator's only
    lock = StackLock(DATA)
    lock.acquire()  # one stack per data directory: a second one exits naming the first one's pid
    PID_FILE.write_text(str(os.getpid()))
    stack = Stack(lock_fd=lock.fd)
    signal.signal(signal.SIGTERM, lambda *_: stack.request_stop())
    signal.signal(signal.SIGINT, lambda *_: stack.request_stop())
    code = 0
    try:
        stack.start()
        stack.wait()
    except GiveUp as exc:
        print(f"klinepipe: {exc}. Stopping.", flush=True)
        code = 1
    finally:
        stack.stop()
        connection_file.remove(pid=os.getpid(), directory=DATA)
        PID_FILE.unlink(missing_ok=True)
        lock.release()
    return code


class Stack:
    """The processes of ``make run``, supervised; benchmarks start it without the sidecars and feed it themselves."""

    def __init__(self, *, with_sidecars: bool = True, lock_fd: int | None = None) -> None:
        self.since = datetime.now(timezone.utc)
        self._connection_file: Path | None = None
        self._parts: dict[str, int] = {}  # pid per part, as last written to the connection file
        self._ui_url = ""
        self._banner_due: float | None = None  # monotonic deadline for the banner while the UI does not answer yet
        self.with_sidecars = with_sidecars
        self.database_url = self.bootstrap = ""
        self.airflow_port = 0
        self.password = ""
        self.streaming_source = ""  # "live" or "replay", as the sidecar said at its start
        self._lock_fd = lock_fd
        self._stop = threading.Event()
        self._pg = None
        self._pg_down_since: float | None = None
        self._broker_port: int | None = None
        self._env: dict = {}
        self._resume = ""
        self.watchdog: Watchdog | None = None
        self.sup: Supervisor | None = None

    @property
    def children(self) -> dict[str, subprocess.Popen]:
        return {} if self.sup is None else {n: c.proc for n, c in self.sup.children.items()}

    def request_stop(self) -> None:
        self._stop.set()

    def start(self) -> None:
        self.watchdog = Watchdog(self._lock_fd, LOGS / "watchdog.log")
        self.sup = Supervisor(cwd=ROOT, mask=lambda: [self.password], watchdog=self.watchdog, log_limits=log_limits(os.environ))
        database_url, airflow_db_url = self._postgres()
        bootstrap = self._kafka()
        if self._broker_port is not None:
            forgotten = forget_offsets(database_url)
            if forgotten:
                print(f"kafka: the new embedded broker starts empty: the loader reads its topics from the beginning"
                      f" ({forgotten} stored offsets of the last run's broker dropped)", flush=True)
        self.database_url, self.bootstrap = database_url, bootstrap
        self._env = env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PYTHONUNBUFFERED": "1",
            "KLINEPIPE_REPORTS_DIR": os.environ.get("KLINEPIPE_REPORTS_DIR", str(DATA / "reports")),
            # a replay catching up on history may cross several times a minute: no order-rate cap in the demo
            "TRADER_MAX_ORDERS_PER_MINUTE": os.environ.get("TRADER_MAX_ORDERS_PER_MINUTE", "0"),
        }
        port = self.airflow_port = self._airflow(env, airflow_db_url, database_url, bootstrap)
        if self.with_sidecars:
            self.sup.add(Child("streaming", [sys.executable, "-m", "streaming", os.environ.get("STREAMING_MODE", "auto")],
                               self._streaming_env, LOGS / "streaming.log", echo=True, finished_ok=True,
                               on_line=self._streaming_line, on_restart=lambda: self._messages_lost("streaming restarted")))
            self.sup.add(Child("trader", [sys.executable, "-m", "trader", "--mode", "paper", "run"], lambda: env,
                               LOGS / "trader.log", echo=True))
        self._announce(port)

    def _streaming_env(self) -> dict:
        """At its first start the replay goes on after ``STREAMING_REPLAY_AFTER`` or the newest replayed candle
        stored; after a restart always after the newest stored: what the broker held unread is re-published."""
        try:
            self._resume = replay_resume_point(self.database_url)
        except sa.exc.OperationalError as exc:  # PostgreSQL away: the last point known (earlier is only slower)
            print(f"streaming: cannot read the newest stored candle ({str(exc).splitlines()[0]}); replaying after"
                  f" {self._resume or 'the start'}", flush=True)
        first = os.environ.get("STREAMING_REPLAY_AFTER") if self.sup.children["streaming"].starts == 0 else None
        return {**self._env, "STREAMING_REPLAY_AFTER": first or self._resume}

    def _streaming_line(self, line: str) -> None:
        if m := re.search(r"^streaming: source=(\w+)", line):
            self.streaming_source = m.group(1)

    def _postgres(self) -> tuple[str, str]:
        url = os.environ.get("DATABASE_URL")
        if url:
            admin = sa.engine.make_url(url)
            airflow = admin.set(database="airflow")
            ensure_database(admin.set(database="postgres").render_as_string(hide_password=False), "airflow")
        else:
            self._pg = start_postgres(DATA / "pg")
            self.watchdog.postgres(DATA / "pg")
            ensure_database(self._pg.get_uri("postgres"), "klinepipe")
            ensure_database(self._pg.get_uri("postgres"), "airflow")
            url, airflow = self._pg.get_uri("klinepipe"), sa.engine.make_url(self._pg.get_uri("airflow"))
            print(f"postgres: embedded PostgreSQL, data in {DATA / 'pg'}", flush=True)
        engine = make_engine(url)
        applied = apply_migrations(engine)
        engine.dispose()
        print(f"postgres: schema up to date ({len(applied)} migrations applied now)", flush=True)
        airflow_url = sa.engine.make_url(airflow).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
        return url, airflow_url

    def _kafka(self) -> str:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap:
            return bootstrap
        port = self._broker_port = free_port()
        self.sup.add(Child("tansu", broker_argv(port), lambda: broker_env(os.environ), LOGS / "tansu.log",
                           ready=lambda: wait_listening(port), on_restart=self._broker_replaced))
        wait_listening(port)
        print(f"kafka: embedded tansu broker on 127.0.0.1:{port} (memory only; PostgreSQL is the record)", flush=True)
        return f"127.0.0.1:{port}"

    def _broker_replaced(self) -> None:
        """A new incarnation of the memory-only broker holds nothing: what the old one had acknowledged but the
        loader had not read is gone. The loader sees the new topic ids and starts from offset 0; the sidecar is
        restarted so it creates the topics again and re-publishes after the newest candle stored."""
        print("kafka: the embedded broker was restarted empty; the candles it held unread are published again", flush=True)
        if self.with_sidecars and "streaming" in self.sup.children:
            self.sup.restart_now("streaming", "the broker it publishes to was replaced")
        self._messages_lost("the broker was replaced")

    def _messages_lost(self, why: str) -> None:
        """Live mode: the candles published since the newest one stored may be lost with a restarted sidecar or
        broker; once the feed is back, what lies between is requested over REST now instead of waiting for the
        hourly gap search. (A replay re-publishes them itself: it restarts after the newest replayed candle.)"""
        if self.streaming_source != "live":
            return
        try:
            before = newest_per_series(self.database_url)
        except sa.exc.OperationalError as exc:
            print(f"backfill: {why}, but PostgreSQL cannot say what is stored ({str(exc).splitlines()[0]}); the hourly"
                  " backfill_klines gap search will find what was lost", flush=True)
            return
        threading.Thread(target=fill_lost_candles, args=(self._env, self.database_url, before, why, self._stop),
                         kwargs={"logs": LOGS, "cwd": ROOT}, daemon=True).start()

    def _airflow(self, env: dict, airflow_db_url: str, database_url: str, bootstrap: str) -> int:
        port = int(os.environ.get("AIRFLOW_PORT", "8080"))
        if not port_is_free(port, "0.0.0.0"):
            port = free_port()
        AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
        secrets_ = airflow_secrets(AIRFLOW_HOME)
        self.password = secrets_["admin_password"]
        env.update(airflow_settings(root=ROOT, home=AIRFLOW_HOME, port=port, secrets_=secrets_,
                                    airflow_db_url=airflow_db_url, database_url=database_url, bootstrap=bootstrap))
        airflow = str(Path(sys.executable).parent / "airflow")
        with private_log(LOGS / "airflow-db-migrate.log") as out:
            migrated = subprocess.run([airflow, "db", "migrate"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        if migrated.returncode != 0:
            raise GiveUp(f"airflow db migrate failed (code {migrated.returncode}); see {LOGS / 'airflow-db-migrate.log'}")
        print("airflow: metadata database up to date", flush=True)
        for component in AIRFLOW_COMPONENTS:
            self.sup.add(Child(f"airflow-{component}", [airflow, component], lambda: env, LOGS / f"airflow-{component}.log"))
        return port

    def _write_connection_file(self) -> None:
        """``<data>/stack.env``: how the CLIs of other shells find this stack, with each part's pid and restarts
        (``make status``). Rewritten whenever a part was restarted."""
        children = self.sup.children if self.sup is not None else {}
        self._parts = {name: c.proc.pid for name, c in children.items() if c.proc is not None}
        settings = {"DATABASE_URL": dsn.libpq_dsn(self.database_url), "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                    "AIRFLOW_URL": f"http://127.0.0.1:{self.airflow_port}"}
        self._connection_file = connection_file.write(
            settings, pid=os.getpid(), since=self.since, directory=DATA, parts=dict(self._parts),
            restarts={name: max(c.starts - 1, 0) for name, c in children.items()})

    def _announce(self, port: int) -> None:
        """The CLIs can find the stack at once; the banner follows once the UI answers (``wait``)."""
        self._ui_url = f"http://127.0.0.1:{port}"
        self._write_connection_file()
        self._banner_due = time.monotonic() + 600
        print("airflow: starting; its UI's address follows once it answers", flush=True)

    def _banner_when_ready(self) -> None:
        if self._banner_due is None:
            return
        answered = ui_answers(self._ui_url)
        if answered or time.monotonic() > self._banner_due:
            self._banner_due = None
            self._banner(self._ui_url, self.database_url, answered)

    def _banner(self, url: str, database_url: str, answered: bool) -> None:
        print(banner(url=url, database_url=database_url, bootstrap=self.bootstrap, answered=answered, logs=LOGS,
                     passwords=password_file(AIRFLOW_HOME), connection_file_path=self._connection_file), flush=True)

    def wait(self) -> None:
        """Supervise until asked to stop: restart what dies; ``GiveUp`` on a crash loop."""
        while not self._stop.wait(1.0):
            self._check_postgres()
            self.sup.check()
            if {n: c.proc.pid for n, c in self.sup.children.items() if c.proc is not None} != self._parts:
                self._write_connection_file()  # a part was restarted: make status shows its new pid and count
            self._banner_when_ready()

    def _check_postgres(self) -> None:
        """The embedded PostgreSQL is supervised too: started again when its postmaster is gone."""
        if self._pg is None:
            return
        info = PostmasterInfo.read_from_pgdata(self._pg.pgdata)
        if info is not None and info.is_running():
            if self._pg_down_since is not None:
                print(f"postgres: back after {time.monotonic() - self._pg_down_since:.0f} s", flush=True)
                self._pg_down_since = None
            return
        if self._pg_down_since is None:
            self._pg_down_since = time.monotonic()
            print("postgres: the embedded PostgreSQL is not running; starting it again"
                  f" (see {self._pg.pgdata / 'log'})", flush=True)
        try:
            with self._pg._lock:
                self._pg.ensure_postgres_running()
        except Exception as exc:  # noqa: BLE001 - pg_ctl's failure is shown and retried, the stack keeps running
            if time.monotonic() - self._pg_down_since > 120:
                raise GiveUp(f"the embedded PostgreSQL does not start again ({exc}); see {self._pg.pgdata / 'log'}") from exc

    def stop(self) -> None:
        print("stopping ...", flush=True)
        if self.sup is not None:
            # everything but the broker at once (the streaming flushes to it), SIGKILL after 15 s; then the broker
            self.sup.grace = 15.0
            self.sup.stop(["streaming", "trader", *(f"airflow-{c}" for c in AIRFLOW_COMPONENTS)])
            self.sup.grace = 5.0
            self.sup.stop(["tansu"])
        if self._pg is not None:
            self._pg.cleanup()
        if self.watchdog is not None:
            self.watchdog.bye()
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
