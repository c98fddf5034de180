"""``make run``'s executor forks its LocalExecutor workers with the tasks' modules already imported: a worker's
memory maps hold TA-Lib's and pandas' compiled libraries before it has run any task (a plain LocalExecutor's
worker, forked from a process that never imported them, does not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devstack.airflow_env import airflow_settings

PROBE = r"""
import json, sys
from pathlib import Path
from airflow.executors.local_executor import LocalExecutor
from klinepipe.warm_executor import WarmLocalExecutor
executor = (WarmLocalExecutor if sys.argv[1] == "warm" else LocalExecutor)(parallelism=1)
executor.start()
try:
    (pid,) = executor.workers
    maps = Path(f"/proc/{pid}/maps").read_text()
    Path(sys.argv[2]).write_text(json.dumps({"talib": "talib" in maps, "pandas": "pandas/_libs" in maps,
                                             "scheduler_has_ingest": "klinepipe.ingest" in sys.modules}))
finally:
    executor.end()
"""


def _probe(kind: str, home: Path) -> dict:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}
    result = home / f"{kind}.json"  # not stdout: the worker's log lines share it
    out = subprocess.run([sys.executable, "-c", PROBE, kind, str(result)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(result.read_text())


def test_the_warm_executors_workers_are_forked_with_the_task_modules_imported(tmp_path):
    warm = _probe("warm", tmp_path)
    assert warm == {"talib": True, "pandas": True, "scheduler_has_ingest": True}
    plain = _probe("plain", tmp_path)
    assert plain["talib"] is False and plain["scheduler_has_ingest"] is False


def test_make_run_uses_the_warm_executor(tmp_path):
    env = airflow_settings(root=tmp_path, home=tmp_path, port=8080, secrets_={"jwt_secret": "j", "secret_key": "k"},
                           airflow_db_url="postgresql://u@h/airflow", database_url="postgresql://u@h/klinepipe",
                           bootstrap="127.0.0.1:9092")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "klinepipe.warm_executor.WarmLocalExecutor"
