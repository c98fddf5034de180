"""``make run``: the whole pipeline on one machine, on embedded defaults (composition root).

Starts, in order: PostgreSQL (``DATABASE_URL`` or embedded pgserver under ``.data/pg``), the schema
migrations, a Kafka-API broker (``KAFKA_BOOTSTRAP_SERVERS`` or the embedded tansu), Airflow 3's api-server,
scheduler, dag-processor and triggerer (``AIRFLOW_HOME=.data/airflow``, metadata in the same PostgreSQL), the
streaming sidecar (live Binance when reachable, else a replay of the bundled klines) and the trader in paper
mode -- and supervises them (``klinepipe.supervisor``): one stack per data directory, a part that dies is
restarted, a crash loop stops the stack (exit 1), nothing outlives it. Ctrl-C or SIGTERM stops every process
it started, Airflow's workers included.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import signal
import string
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from pgserver.utils import PostmasterInfo

from klinepipe import connection_file, logging_setup
from klinepipe.airflow_conn import dead_letter_topic, klines_topic
from klinepipe.db import apply_migrations, ensure_database, make_engine
from klinepipe.embedded import broker_argv, broker_env, free_port, port_is_free, start_postgres, wait_listening
from klinepipe.binance.intervals import interval_ms
from klinepipe.supervisor import Child, GiveUp, StackLock, Supervisor, private_log
from klinepipe.watchdog import Watchdog

log = logging.getLogger("devstack")

ROOT = Path(__file__).resolve().parents[2]
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


def forget_offsets(database_url: str) -> int:
    """Drop the stored Kafka offsets of the pipeline's topics; return how many there were.

    For a new embedded broker only: it keeps nothing across restarts, so the offsets stored in the last run
    point into a log that no longer exists. Its offsets start again at 0, and tansu answers a fetch past the
    end of a log with nothing at all (no out-of-range error a consumer could reset on), so the loader would
    skip every new message below the old offset. The topic id stored with each offset catches that too
    (``read_offsets``); this also covers offsets stored before ids were recorded."""
    topics = [klines_topic(), dead_letter_topic()]
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            return conn.execute(sa.text("DELETE FROM etl.kafka_offsets WHERE topic = ANY(:t)"), {"t": topics}).rowcount
    finally:
        engine.dispose()


def replay_resume_point(database_url: str) -> str:
    """Where a new replay goes on, per series: ``BTCUSDT:1m=<epoch ms>,...``, each the newest replayed event
    stored for that series (``""`` when none). One point for all series would skip, in every series but the
    newest, everything between its own last candle and the other series' newest."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT symbol, interval, (extract(epoch FROM max(event_time)) * 1000)::bigint"
                                        " FROM market.candles WHERE source = 'replay'"
                                        " GROUP BY symbol, interval ORDER BY symbol, interval").fetchall()
    finally:
        engine.dispose()
    return ",".join(f"{symbol}:{interval}={newest}" for symbol, interval, newest in rows)


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
        self.sup = Supervisor(cwd=ROOT, mask=lambda: [self.password], watchdog=self.watchdog)
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
                         daemon=True).start()

    def _airflow(self, env: dict, airflow_db_url: str, database_url: str, bootstrap: str) -> int:
        port = int(os.environ.get("AIRFLOW_PORT", "8080"))
        if not port_is_free(port, "0.0.0.0"):
            port = free_port()
        u = sa.engine.make_url(database_url)
        AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
        secrets_ = airflow_secrets(AIRFLOW_HOME)
        self.password = secrets_["admin_password"]
        env.update(
            {
                "AIRFLOW_HOME": str(AIRFLOW_HOME),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__AUTH_MANAGER":
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file()),
                # the components are separate processes: they must share the secrets that sign tokens and sessions
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets_["jwt_secret"],
                "AIRFLOW__API__SECRET_KEY": secrets_["secret_key"],
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db_url,
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                # a task whose scheduler was killed under it is failed (and retried) after 60 s, not 300 s
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT":
                    os.environ.get("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "60"),
                "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL":
                    os.environ.get("AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL", "30"),
                # a busy 2-core machine: the task runner's calls to the API server may take longer than the 5 s default
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": os.environ.get("AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT", "60"),
                **airflow_quiet_logging(),
                "AIRFLOW_CONN_KLINEPIPE_DB": json.dumps(
                    {"conn_type": "postgres", "host": u.query.get("host") or u.host, "port": u.port, "login": u.username,
                     "password": u.password, "schema": u.database}
                ),
                "AIRFLOW_CONN_KLINEPIPE_KAFKA": json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": bootstrap}}),
            }
        )
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
        settings = {"DATABASE_URL": _libpq(self.database_url), "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
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
        answered = _ui_answers(self._ui_url)
        if answered or time.monotonic() > self._banner_due:
            self._banner_due = None
            self._banner(self._ui_url, self.database_url, answered)

    def _banner(self, url: str, database_url: str, answered: bool) -> None:
        shown = {"DATABASE_URL": _shown_url(database_url), "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        print(
            "\n".join(
                [
                    "",
                    "klinepipe is running. Press Ctrl-C to stop everything.",
                    f"  Airflow UI : {url}   login: admin, password in {password_file()} (readable by you only)"
                    if answered else f"  Airflow UI : not answering at {url} yet; see {LOGS / 'airflow-api-server.log'}",
                    "               DAGs ingest_klines (every minute and on each closed kline) and compute_features (on new candles)",
                    f"  Trading    : {url}/plugin/trading   (candles, trades, positions, kill switch, freshness)",
                    f"  Metrics    : {url}/klinepipe/metrics (ETL), {metrics_url('STREAMING_METRICS_PORT', 9108)} (streaming),"
                    f" {metrics_url('TRADER_METRICS_PORT', 9102)} (trader)",
                    f"  SQL        : psql '{_libpq(database_url)}'",
                    "               SELECT * FROM market.candles ORDER BY open_time DESC LIMIT 5;",
                    "               SELECT * FROM trading.orders ORDER BY created_at DESC;",
                    f"  Logs       : {LOGS}   (supervisor: this terminal; one file per process, UTC times, capped and rotated)",
                    f"  Other shells: the CLIs read {self._connection_file} while this runs, or paste:",
                    *(f"               {line}" for line in connection_file.export_lines(shown)),
                    "  Status     : make status   (or .venv/bin/python -m klinepipe status)",
                    "",
                ]
            ),
            flush=True,
        )

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


AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def password_file() -> Path:
    return AIRFLOW_HOME / "simple_auth_manager_passwords.json.generated"


def airflow_secrets(home: Path) -> dict[str, str]:
    """The admin password and the secrets Airflow's components share, generated once, in files only the owner
    reads (Airflow's own password file included: it keeps an entry it finds and prints only those it makes)."""
    path = home / "klinepipe-secrets.json"
    stored = _read_private_json(path)
    pw_path = password_file()
    passwords = _read_private_json(pw_path)
    alphabet = string.ascii_letters + string.digits
    values = {
        "jwt_secret": stored.get("jwt_secret") or secrets.token_urlsafe(32),
        "secret_key": stored.get("secret_key") or secrets.token_urlsafe(32),
        "admin_password": passwords.get("admin") or "".join(secrets.choice(alphabet) for _ in range(16)),
    }
    _write_private_json(path, {k: values[k] for k in ("jwt_secret", "secret_key")})
    _write_private_json(pw_path, {**passwords, "admin": values["admin_password"]})
    return values


def _ui_answers(url: str) -> bool:
    """Whether Airflow's API server answers its health check (one short try)."""
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _shown_url(url: str) -> str:
    """The URL as a libpq one, its password (if any) hidden: the banner is seen, the connection file is private."""
    parsed = sa.engine.make_url(url)
    return _libpq(parsed.render_as_string(hide_password=True) if parsed.password else url)


def airflow_quiet_logging() -> dict[str, str]:
    """Airflow's settings that keep ``airflow.log`` to what matters under ``make run``: no line per HTTP request,
    no scheduler/processor INFO chatter (warnings and errors stay; task logs keep their INFO lines).
    ``KLINEPIPE_AIRFLOW_LOG_LEVEL=INFO`` brings it all back."""
    level = os.environ.get("KLINEPIPE_AIRFLOW_LOG_LEVEL", "WARNING").upper()
    if level == "INFO":
        return {}
    return {"AIRFLOW__LOGGING__UVICORN_LOGGING_LEVEL": level,
            "AIRFLOW__LOGGING__NAMESPACE_LEVELS": " ".join(f"{n}={level}" for n in _CHATTY_AIRFLOW_LOGGERS)}


_CHATTY_AIRFLOW_LOGGERS = ("http.access", "uvicorn", "airflow.jobs", "airflow.dag_processing", "airflow.models.dag",
                           "airflow.models.dagbag", "airflow.models.dagrun", "airflow.serialization", "airflow.executors",
                           "airflow.sdk.api.client", "airflow.utils.db", "airflow.task_instance_history",
                           "airflow.api_fastapi", "airflow.utils.serve_logs", "airflow.providers_manager", "sqlalchemy")


def _read_private_json(path: Path) -> dict:
    try:
        path.chmod(0o600)
        return json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return {}


def _write_private_json(path: Path, value: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(value) + "\n")


def metrics_url(setting: str, default: int) -> str:
    """Where a sidecar's /metrics listens, from the setting it reads itself (``0``: none)."""
    value = os.environ.get(setting, "").strip() or str(default)
    if value == "0":
        return f"no /metrics ({setting}=0)"
    return f"http://127.0.0.1:{value}/metrics"


def newest_per_series(database_url: str) -> dict[tuple[str, str], datetime]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT symbol, interval, max(open_time) FROM market.candles GROUP BY 1, 2")
            return {(symbol, interval): newest for symbol, interval, newest in rows}
    finally:
        engine.dispose()


def lost_ranges(database_url: str, before: dict[tuple[str, str], datetime]) -> dict[tuple[str, str], tuple | None]:
    """For each series with a candle stored after its ``before`` newest: the open-time range [start, end) between
    them that is missing (``None``: nothing missing). Series not yet resumed are left out."""
    if not before:
        return {}
    keys = list(before)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT c.symbol, c.interval, min(c.open_time) FROM market.candles c"
                " JOIN unnest(CAST(:symbols AS text[]), CAST(:intervals AS text[]), CAST(:newest AS timestamptz[]))"
                " AS b(symbol, interval, newest) ON c.symbol = b.symbol AND c.interval = b.interval"
                " AND c.open_time > b.newest GROUP BY 1, 2"),
                {"symbols": [k[0] for k in keys], "intervals": [k[1] for k in keys], "newest": [before[k] for k in keys]})
            resumed = {(symbol, interval): first for symbol, interval, first in rows}
    finally:
        engine.dispose()
    out = {}
    for key, first in resumed.items():
        start = before[key] + timedelta(milliseconds=interval_ms(key[1]))
        out[key] = (start, first) if first > start else None
    return out


def fill_lost_candles(env: dict, database_url: str, before: dict[tuple[str, str], datetime], why: str,
                      stop: threading.Event, timeout: float = 600.0) -> None:
    """Wait (up to ``timeout``) for each series to have a candle newer than before the loss, then trigger one
    ``backfill_klines`` history load per interval over the hole. A failure is one line: the hourly gap search
    still finds the hole."""
    deadline, holes, pending = time.monotonic() + timeout, {}, dict(before)
    while pending and time.monotonic() < deadline and not stop.wait(2.0):
        try:
            found = lost_ranges(database_url, pending)
        except sa.exc.OperationalError:
            continue  # PostgreSQL is away: ask again
        for key, hole in found.items():
            del pending[key]
            if hole is not None:
                holes[key] = hole
    by_interval: dict[str, list] = {}
    for (symbol, interval), hole in holes.items():
        by_interval.setdefault(interval, []).append((symbol, *hole))
    if not by_interval:
        print(f"backfill: {why}: no candle lost", flush=True)
    airflow = str(Path(sys.executable).parent / "airflow")
    for interval, series in by_interval.items():
        symbols = sorted(s for s, _, _ in series)
        start, end = min(h[1] for h in series), max(h[2] for h in series)
        conf = {"symbols": symbols, "interval": interval, "start": start.isoformat(), "end": end.isoformat()}
        with private_log(LOGS / "airflow-cli.log") as out:
            done = subprocess.run([airflow, "dags", "trigger", "backfill_klines", "--conf", json.dumps(conf)], cwd=ROOT,
                                  env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        result = "requested" if done.returncode == 0 else f"could not be requested (see {LOGS / 'airflow-cli.log'})"
        print(f"backfill: {why}: {interval} candles of {','.join(symbols)} missing in [{start.isoformat()},"
              f" {end.isoformat()}): a REST history load {result}", flush=True)


def _libpq(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


if __name__ == "__main__":
    sys.exit(main())
