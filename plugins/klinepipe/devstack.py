"""``make run``: the whole pipeline on one machine, on embedded defaults (composition root).

Starts, in order: PostgreSQL (``DATABASE_URL`` or embedded pgserver under ``.data/pg``), the schema
migrations, a Kafka-API broker (``KAFKA_BOOTSTRAP_SERVERS`` or the embedded tansu), Airflow 3
standalone (``AIRFLOW_HOME=.data/airflow``, metadata in the same PostgreSQL), the streaming sidecar
(live Binance when reachable, else a replay of the bundled klines) and the trader in paper mode.
Ctrl-C or SIGTERM stops every process it started, Airflow's workers included.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import psutil
import sqlalchemy as sa

from klinepipe import connection_file, logging_setup
from klinepipe.airflow_conn import dead_letter_topic, klines_topic
from klinepipe.db import apply_migrations, ensure_database, make_engine
from klinepipe.embedded import port_is_free, free_port, start_broker, start_postgres

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
    _claim_pid_file()
    stack = Stack()
    signal.signal(signal.SIGTERM, lambda *_: stack.request_stop())
    signal.signal(signal.SIGINT, lambda *_: stack.request_stop())
    try:
        stack.start()
        stack.wait()
    finally:
        stack.stop()
        connection_file.remove(pid=os.getpid(), directory=DATA)
        PID_FILE.unlink(missing_ok=True)
    return 0


def _claim_pid_file() -> None:
    if PID_FILE.exists():
        try:
            pid = int(PID_FILE.read_text().strip())
        except ValueError:
            pid = 0
        if pid and psutil.pid_exists(pid) and pid != os.getpid():
            sys.exit(f"klinepipe is already running (pid {pid}); stop it first (kill {pid})")
    PID_FILE.write_text(str(os.getpid()))


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
    """The processes of ``make run``; benchmarks start it without the sidecars and feed it themselves."""

    def __init__(self, *, with_sidecars: bool = True) -> None:
        self.children: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}
        self.since = datetime.now(timezone.utc)
        self._connection_file: Path | None = None
        self.with_sidecars = with_sidecars
        self.database_url = self.bootstrap = ""
        self.airflow_port = 0
        self._stop = threading.Event()
        self._broker = None
        self._pg = None

    def request_stop(self) -> None:
        self._stop.set()

    def start(self) -> None:
        database_url, airflow_db_url = self._postgres()
        bootstrap = self._kafka()
        if self._broker is not None:
            forgotten = forget_offsets(database_url)
            if forgotten:
                print(f"kafka: the new embedded broker starts empty: the loader reads its topics from the beginning"
                      f" ({forgotten} stored offsets of the last run's broker dropped)", flush=True)
        self.database_url, self.bootstrap = database_url, bootstrap
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PYTHONUNBUFFERED": "1",
            "KLINEPIPE_REPORTS_DIR": os.environ.get("KLINEPIPE_REPORTS_DIR", str(DATA / "reports")),
            # a replay catching up on history may cross several times a minute: no order-rate cap in the demo
            "TRADER_MAX_ORDERS_PER_MINUTE": os.environ.get("TRADER_MAX_ORDERS_PER_MINUTE", "0"),
            # a second run goes on where the last replay stopped instead of replaying what is stored
            "STREAMING_REPLAY_AFTER": os.environ.get("STREAMING_REPLAY_AFTER") or replay_resume_point(database_url),
        }
        port = self.airflow_port = self._airflow(env, airflow_db_url, database_url, bootstrap)
        if self.with_sidecars:
            self._spawn("streaming", [sys.executable, "-m", "streaming", os.environ.get("STREAMING_MODE", "auto")], env, echo=True)
            self._spawn("trader", [sys.executable, "-m", "trader", "--mode", "paper", "run"], env, echo=True)
        self._banner(port, database_url)

    def _postgres(self) -> tuple[str, str]:
        url = os.environ.get("DATABASE_URL")
        if url:
            admin = sa.engine.make_url(url)
            airflow = admin.set(database="airflow")
            ensure_database(admin.set(database="postgres").render_as_string(hide_password=False), "airflow")
        else:
            self._pg = start_postgres(DATA / "pg")
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
        self._broker = start_broker(log_path=LOGS / "tansu.log")
        print(f"kafka: embedded tansu broker on {self._broker.bootstrap_servers} (memory only; PostgreSQL is the record)", flush=True)
        return self._broker.bootstrap_servers

    def _airflow(self, env: dict, airflow_db_url: str, database_url: str, bootstrap: str) -> int:
        port = int(os.environ.get("AIRFLOW_PORT", "8080"))
        if not port_is_free(port, "0.0.0.0"):
            port = free_port()
        u = sa.engine.make_url(database_url)
        env.update(
            {
                "AIRFLOW_HOME": str(AIRFLOW_HOME),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
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
                **airflow_quiet_logging(),
                "AIRFLOW_CONN_KLINEPIPE_DB": json.dumps(
                    {"conn_type": "postgres", "host": u.query.get("host") or u.host, "port": u.port, "login": u.username,
                     "password": u.password, "schema": u.database}
                ),
                "AIRFLOW_CONN_KLINEPIPE_KAFKA": json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": bootstrap}}),
            }
        )
        self._spawn("airflow", ["airflow", "standalone"], env, echo=False)
        return port

    def _spawn(self, name: str, cmd: list[str], env: dict, *, echo: bool) -> None:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        if name in self.children:
            self.restarts[name] = self.restarts.get(name, 0) + 1
        self.children[name] = proc
        logging_setup.pump(name, proc, LOGS, echo=echo)  # UTC time and level on each line; capped, rotated files
        if self._connection_file is not None:
            self._write_connection_file()

    def _write_connection_file(self) -> None:
        settings = {"DATABASE_URL": _libpq(self.database_url), "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                    "AIRFLOW_URL": f"http://127.0.0.1:{self.airflow_port}"}
        self._connection_file = connection_file.write(
            settings, pid=os.getpid(), since=self.since, directory=DATA,
            parts={name: proc.pid for name, proc in self.children.items()},
            restarts={name: self.restarts.get(name, 0) for name in self.children})

    def _banner(self, port: int, database_url: str) -> None:
        url = f"http://127.0.0.1:{port}"
        self._write_connection_file()  # the CLIs find the stack from now on
        password = _wait_for_password(self, timeout=120)
        print("airflow: starting; its UI's address follows once it answers", flush=True)
        answered = _wait_for_ui(self, url, timeout=600)  # no URL on screen before it answers
        shown = {"DATABASE_URL": _shown_url(database_url), "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        print(
            "\n".join(
                [
                    "",
                    "klinepipe is running. Press Ctrl-C to stop everything.",
                    f"  Airflow UI : {url}   login: admin / {password or '(see .data/airflow/simple_auth_manager_passwords.json.generated)'}"
                    if answered else f"  Airflow UI : not answering at {url} yet; see {LOGS / 'airflow.log'}",
                    "               DAGs ingest_klines (every minute and on each closed kline) and compute_features (on new candles)",
                    f"  Trading    : {url}/plugin/trading   (candles, trades, positions, kill switch, freshness)",
                    f"  Metrics    : {url}/klinepipe/metrics (ETL), http://127.0.0.1:9108/metrics (streaming), http://127.0.0.1:9102/metrics (trader)",
                    f"  SQL        : psql '{_libpq(database_url)}'",
                    "               SELECT * FROM market.candles ORDER BY open_time DESC LIMIT 5;",
                    "               SELECT * FROM trading.orders ORDER BY created_at DESC;",
                    f"  Logs       : {LOGS}   (UTC times; each file capped and rotated)",
                    f"  Other shells: the CLIs read {self._connection_file} while this runs, or paste:",
                    *(f"               {line}" for line in connection_file.export_lines(shown)),
                    "  Status     : make status   (or .venv/bin/python -m klinepipe status)",
                    "",
                ]
            ),
            flush=True,
        )

    def wait(self) -> None:
        while not self._stop.wait(1.0):
            for name, proc in self.children.items():
                if proc.poll() is not None and name != "streaming":
                    print(f"{name} exited with code {proc.returncode}; see {LOGS / (name + '.log')}. Stopping.", flush=True)
                    return
                if name == "streaming" and proc.poll() is not None and getattr(self, "_said_streaming", None) is None:
                    self._said_streaming = True
                    print(f"streaming finished (code {proc.returncode}); Airflow and the trader keep running.", flush=True)

    def stop(self) -> None:
        print("stopping ...", flush=True)
        for name in ("streaming", "trader", "airflow"):
            proc = self.children.get(name)
            if proc is not None:
                _stop_tree(proc, timeout=30)
        if self._broker is not None:
            self._broker.stop()
        if self._pg is not None:
            self._pg.cleanup()
        print("stopped.", flush=True)


def _wait_for_password(stack: Stack, timeout: float) -> str | None:
    path = AIRFLOW_HOME / "simple_auth_manager_passwords.json.generated"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stack._stop.is_set():
        if path.exists():
            try:
                return json.loads(path.read_text()).get("admin")
            except (json.JSONDecodeError, OSError):
                pass
        time.sleep(0.5)
    return None


def _wait_for_ui(stack: Stack, url: str, timeout: float) -> bool:
    """Whether Airflow's API server answers its health check within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    airflow = stack.children.get("airflow")
    while time.monotonic() < deadline and not stack._stop.is_set() and (airflow is None or airflow.poll() is None):
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=5) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
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


def _stop_tree(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the process group and every descendant; SIGKILL what is left after ``timeout``."""
    try:
        family = [proc_ps := psutil.Process(proc.pid), *proc_ps.children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for p in family:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _libpq(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


if __name__ == "__main__":
    sys.exit(main())
