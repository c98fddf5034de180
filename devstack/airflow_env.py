"""Airflow 3 under ``make run``: its settings (one machine, 2 cores, metadata in the stack's PostgreSQL), the
secrets its components share, generated once into files only the owner reads, and its quiet logging."""

from __future__ import annotations

import json
import os
import secrets
import string
from pathlib import Path

import sqlalchemy as sa

from devstack.embedded import free_port

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def password_file(home: Path) -> Path:
    return home / "simple_auth_manager_passwords.json.generated"


def airflow_secrets(home: Path) -> dict[str, str]:
    """The admin password and the secrets Airflow's components share, generated once, in files only the owner
    reads (Airflow's own password file included: it keeps an entry it finds and prints only those it makes)."""
    path = home / "klinepipe-secrets.json"
    stored = _read_private_json(path)
    pw_path = password_file(home)
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


def airflow_settings(*, root: Path, home: Path, port: int, secrets_: dict[str, str], airflow_db_url: str,
                     database_url: str, bootstrap: str) -> dict[str, str]:
    """The ``AIRFLOW_*`` environment of Airflow's four components: the project's DAGs and plugins, LocalExecutor
    sized for 2 cores, the API server on 127.0.0.1:``port``, and the Connections to the stack's services."""
    u = sa.engine.make_url(database_url)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # LocalExecutor whose workers are forked with the tasks' modules already imported (klinepipe.warm_executor)
        "AIRFLOW__CORE__EXECUTOR": "klinepipe.warm_executor.WarmLocalExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file(home)),
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
        # Latency of the event path (bench latency). The task supervisor waits in select() up to this interval
        # between its looks at the task process: a task whose end it does not see at once (every skipped one:
        # its state is sent when the process is gone) held its DAG run, and so the next ingest run
        # (max_active_runs=1), 5 s longer than its work; a heartbeat per second is cheap.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": os.environ.get("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", "1"),
        # each hop of a run (asset event -> run, run -> first tasks, plan -> load_batch, last task -> run done)
        # waits for the scheduler's next loop: an idle scheduler sleeps 0.5 s between loops, not 1 s
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME":
            os.environ.get("AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME", "0.5"),
        # the topic watcher looks twice a second, not every 2 s (a look: one PostgreSQL query and a peek at the topic)
        "KLINEPIPE_TRIGGER_POLL_S": os.environ.get("KLINEPIPE_TRIGGER_POLL_S", "0.5"),
        **airflow_quiet_logging(),
        "AIRFLOW_CONN_KLINEPIPE_DB": json.dumps(
            {"conn_type": "postgres", "host": u.query.get("host") or u.host, "port": u.port, "login": u.username,
             "password": u.password, "schema": u.database}
        ),
        "AIRFLOW_CONN_KLINEPIPE_KAFKA": json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": bootstrap}}),
    }


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
