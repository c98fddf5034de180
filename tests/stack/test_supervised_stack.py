"""A real ``make run`` (embedded PostgreSQL, tansu, Airflow's four components, streaming, trader) as a supervisor:
kill -9 of any child brings it back, a new broker incarnation loses no candle, a second stack on the same data
is refused naming the first, secrets and logs are private, the banner states the real ports, and kill -9 of the
supervisor itself leaves nothing running, PostgreSQL included."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from devstack.embedded import free_port
from tests.conftest import ROOT
from tests.helpers import sample_rows, write_csv
from tests.stack.runner import Run, alive, cmdline, count

pytestmark = pytest.mark.stack

N = 900  # 15 hours of 1m candles: 90 s of replay at 600x, long enough to kill every part while it runs
CHILDREN = ["tansu", "streaming", "trader", "airflow-scheduler", "airflow-triggerer", "airflow-dag-processor",
            "airflow-api-server"]


def _complete(url: str, rows: list[list[str]]) -> bool:
    return count(url, "SELECT count(*) FROM market.candles") == len(rows)


def _wait_for_unread(run: Run, url: str) -> int:
    """How many candles the broker acknowledged that are not stored, once there are some (progress lines)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        acked = [int(m.group(1)) for line in list(run.lines) if (m := re.search(r"streaming: published=\d+ acked=(\d+)", line))]
        if acked and (unread := acked[-1] - count(url, "SELECT count(*) FROM market.candles")) > 0:
            return unread
        time.sleep(0.2)
    raise AssertionError("the loader never lagged behind the broker:\n" + "".join(run.lines[-40:]))


def test_kill_9_of_every_part_and_of_the_supervisor(tmp_path):
    rows = sample_rows(N)
    replay = write_csv(tmp_path / "BTCUSDT-1m.csv", rows)
    streaming_port, trader_port = free_port(), free_port()
    data = tmp_path / "data"
    run = Run(data, STREAMING_REPLAY_FILES=str(replay), STREAMING_METRICS_PORT=str(streaming_port),
              TRADER_METRICS_PORT=str(trader_port))
    try:
        url = run.wait_for(r"SQL\s+: psql '([^']+)'", 300).group(1)
        run.wait_for(rf"Metrics .* http://127\.0\.0\.1:{streaming_port}/metrics \(streaming\),"
                     rf" http://127\.0\.0\.1:{trader_port}/metrics \(trader\)", 5)

        # secrets on disk: private, never in a log
        password = json.loads((data / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        for secret in (data / "airflow" / "simple_auth_manager_passwords.json.generated",
                       data / "airflow" / "klinepipe-secrets.json", data / "run.lock"):
            assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
        assert stat.S_IMODE((data / "logs").stat().st_mode) == 0o700

        # one stack per data directory
        twin = subprocess.run([sys.executable, "-m", "devstack"], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "KLINEPIPE_DATA_DIR": str(data)}, timeout=120)
        assert twin.returncode == 1
        assert f"klinepipe is already running on {data} (pid {run.proc.pid})" in twin.stderr

        # kill -9 of each kind of child: each comes back
        for name in CHILDREN:
            old = run.pid_of(name)
            if name == "tansu":  # first (acked counts from 0), when it holds candles the loader has not stored
                unread = _wait_for_unread(run, url)
                streaming = run.pid_of("streaming")
            os.kill(old, signal.SIGKILL)
            new = run.wait_for_new(name, old, 120)
            run.wait_for(rf"supervisor: {name} \(pid {old}\) was killed by signal 9 after", 5)
            print(f"{name}: pid {old} killed, back as pid {new}")
            if name == "tansu":
                run.wait_for(r"kafka: the embedded broker was restarted empty", 30)
                run.wait_for(r"supervisor: restarting streaming: the broker it publishes to was replaced", 30)
                run.wait_for_new("streaming", streaming, 60)
                print(f"tansu: killed holding {unread} acknowledged candles not stored yet")

        # the broker's restart lost what it held unread; the candles still all arrive, exactly once
        deadline = time.monotonic() + 300
        while not _complete(url, rows):
            assert time.monotonic() < deadline, (count(url, "SELECT count(*) FROM market.candles"), "".join(run.lines[-40:]))
            time.sleep(2)
        assert count(url, "SELECT count(DISTINCT open_time) FROM market.candles") == N
        assert count(url, f"SELECT count(*) FROM market.candles WHERE open_time = to_timestamp({int(rows[-1][0]) / 1000})"
                          f" AND close = {rows[-1][4]}") == 1

        for log in (data / "logs").iterdir():
            assert stat.S_IMODE(log.stat().st_mode) == 0o600, log
            assert password not in log.read_text(errors="replace"), log
        assert password not in "".join(run.lines)
        task_logs = [f for f in (data / "airflow" / "logs").rglob("*") if f.is_file()]
        assert task_logs and [f for f in task_logs if f.stat().st_mode & 0o077] == []
    except BaseException:
        run.stop()
        raise

    # kill -9 of the supervisor: its watchdog stops every child, their children and PostgreSQL
    family = [p for p in run.family() if p.pid != run.proc.pid]
    postgres = [p for p in psutil.process_iter() if str(data / "pg") in cmdline(p)]
    assert postgres and len([p for p in family if "airflow" in cmdline(p)]) >= 4
    run.proc.kill()
    run.proc.wait()
    deadline = time.monotonic() + 60
    while left := [p for p in family + postgres if alive(p)]:
        assert time.monotonic() < deadline, [cmdline(p) for p in left]
        time.sleep(0.5)
    assert not [p for p in psutil.process_iter() if str(data) in cmdline(p)]
    assert "the supervisor died" in Path(data / "logs" / "watchdog.log").read_text()


def test_a_part_that_cannot_run_stops_make_run_with_exit_1_naming_its_log(tmp_path):
    """The trader refuses its settings (exit 2: not retried) or, before that check existed, crash-loops (five
    quick deaths): either way ``make run`` stops everything and exits 1 with one line naming the trader's log."""
    data = tmp_path / "data"
    run = Run(data, TRADER_STRATEGY_PARAMS="{not json", STREAMING_METRICS_PORT="0", TRADER_METRICS_PORT="0")
    family: list[psutil.Process] = []
    deadline = time.monotonic() + 600
    while run.proc.poll() is None:
        assert time.monotonic() < deadline, "".join(run.lines[-40:])
        try:
            family += [p for p in run.family() if p not in family]
        except psutil.NoSuchProcess:
            pass
        time.sleep(1)
    run.proc.wait()
    out = "".join(run.lines)
    assert run.proc.returncode == 1, out[-3000:]
    verdict = [line for line in run.lines if line.startswith("klinepipe: trader ")]
    assert verdict and str(data / "logs" / "trader.log") in verdict[-1] and verdict[-1].endswith("Stopping.\n"), out[-3000:]
    time.sleep(1)
    assert [cmdline(p) for p in family if alive(p)] == []
    assert not [p for p in psutil.process_iter() if str(data) in cmdline(p)]
