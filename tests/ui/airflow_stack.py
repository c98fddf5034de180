"""A real Airflow for browser tests: ``api-server``, ``scheduler`` and ``dag-processor`` on the test metadata
database, with the repo's dags/ and plugins/, so that a run triggered from the UI is scheduled and executed
(LocalExecutor) like under ``make run``. No triggerer: the DAGs these tests trigger never defer."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devstack.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).parent / "airflow"


@dataclass
class AirflowStack:
    base: str
    home: Path
    logs: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def password(self) -> str:
        return json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]

    def token(self) -> str:
        """What Airflow's login page does: POST /auth/token; the UI keeps the token in the ``_token`` cookie."""
        body = json.dumps({"username": "admin", "password": self.password}).encode()
        req = urllib.request.Request(f"{self.base}/auth/token", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=90) as r:
            return json.load(r)["access_token"]

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        req = urllib.request.Request(f"{self.base}/api/v2{path}", None if body is None else json.dumps(body).encode(),
                                     {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
                                     method=method)
        with urllib.request.urlopen(req, timeout=90) as r:
            return json.load(r)

    def wait_for_dags(self, dag_ids: set[str], timeout: float = 240) -> None:
        """Until the dag-processor has serialized every one of ``dag_ids`` (the UI's DAG list shows them)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen = {d["dag_id"] for d in self.api("/dags?limit=100")["dags"]}
            except (OSError, urllib.error.URLError):
                seen = set()
            if dag_ids <= seen:
                return
            self.check_alive()
            assert time.monotonic() < deadline, f"DAGs {sorted(dag_ids - seen)} never parsed; {self.tail('dag-processor')}"
            time.sleep(1)

    def run_ids(self, dag_id: str) -> set[str]:
        """Every run of ``dag_id`` so far: the metadata database is shared with the ``dag.test()`` tests."""
        return {r["dag_run_id"] for r in self.api(f"/dags/{dag_id}/dagRuns?limit=1000")["dag_runs"]}

    def wait_for_run(self, dag_id: str, before: set[str], timeout: float = 300) -> dict:
        """The one manual run of ``dag_id`` that is not in ``before`` (the ids taken before pressing Trigger),
        once it finished (success or failed). Before ``before`` was asked for, an older failed run of the
        same DAG (another test's ``dag.test()``) could be returned while the form's POST was still in flight."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [r for r in self.api(f"/dags/{dag_id}/dagRuns?run_type=manual&limit=1000")["dag_runs"]
                    if r["dag_run_id"] not in before]
            assert len(runs) <= 1, f"{dag_id}: one press made {len(runs)} runs: {[r['dag_run_id'] for r in runs]}"
            if runs and runs[0]["state"] in ("success", "failed"):
                return runs[0]
            self.check_alive()
            assert time.monotonic() < deadline, f"{dag_id}: {runs}; {self.tail('scheduler')}"
            time.sleep(1)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"airflow {name} exited with {proc.returncode}: {self.tail(name)}"

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_airflow(env: dict[str, str], logs: Path, *, overrides: dict[str, str] | None = None,
                  extra: dict[str, list[str]] | None = None) -> AirflowStack:
    """Start the three processes with ``env`` (an ``airflow_env`` + connections); return when the UI answers.
    ``overrides`` replace the sizing below (e.g. the executor's); ``extra`` names more ``airflow`` commands to run
    beside them (e.g. Celery workers), each logged to ``<name>.log``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **env,
           "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__WORKERS": "1",
           "AIRFLOW__API__BASE_URL": base,
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
           "AIRFLOW__API_AUTH__JWT_SECRET": env.get("AIRFLOW__API_AUTH__JWT_SECRET") or secrets.token_urlsafe(32),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__PARALLELISM": "2", "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "1",
           "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
           "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
           "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",  # a busy 2-core test machine: the default 5 s times out
           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
           "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]), **(overrides or {})}
    logs.mkdir(parents=True, exist_ok=True)
    stack = AirflowStack(base, Path(env["AIRFLOW_HOME"]), logs)
    for name, cmd in (("api-server", ["api-server", "-p", str(port), "-H", "127.0.0.1"]),
                      ("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"]), *(extra or {}).items()):
        with open(logs / f"{name}.log", "wb") as out:
            stack.procs[name] = subprocess.Popen([str(AIRFLOW), *cmd], cwd=ROOT, env=env, stdout=out,
                                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/v2/version", timeout=5) as r:
                if r.status == 200:
                    break
        except (OSError, urllib.error.URLError):
            pass
        try:
            stack.check_alive()
            assert time.monotonic() < deadline, f"no UI on {base}: {stack.tail('api-server')}"
        except AssertionError:
            stack.stop()
            raise
        time.sleep(0.5)
    return stack
