"""The supervisor with real processes (no Airflow): restarts with backoff, a crash loop gives up naming the log,
a refused setting is not retried, secrets never reach a log, logs are private, one stack per data directory,
and nothing outlives a supervisor killed with SIGKILL, not even a grandchild that left the process group."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from devstack.stack_lock import StackLock
from devstack.supervisor import Child, GiveUp, Supervisor, stop_groups
from tests.conftest import ROOT

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}


def _until(predicate, what: str, timeout: float = 30.0, every=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if every is not None:
            every()
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_killed_child_is_restarted_with_a_doubling_backoff_and_a_line_saying_so(tmp_path, capsys):
    sup = Supervisor(cwd=tmp_path, backoff_start=0.2, backoff_cap=0.4, quick=600)
    child = sup.add(Child("sleeper", SLEEPER, _env, tmp_path / "sleeper.log"))
    try:
        for round_, delay in enumerate(["0.2 s", "0.4 s", "0.4 s"]):  # doubling, capped
            first = child.proc.pid
            os.kill(first, signal.SIGKILL)
            _until(lambda: child.proc.pid != first and child.proc.poll() is None, "a new sleeper", every=sup.check)
            out = capsys.readouterr().out
            assert f"sleeper (pid {first}) was killed by signal 9 after" in out
            assert f"restarting in {delay}" in out and f"(see {tmp_path / 'sleeper.log'})" in out
            assert child.starts == round_ + 2
        assert [child.restart_at, child.quick_deaths] == [None, 3]
    finally:
        sup.stop()


def test_a_dead_childs_descendants_go_with_it_even_those_in_a_group_of_their_own(tmp_path):
    # as Airflow's task processes: a child of the scheduler's worker, in a process group of its own
    family = ("import subprocess, sys, time;"
              "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True);"
              "print(g.pid, flush=True); time.sleep(600)")
    sup = Supervisor(cwd=tmp_path, quick=600)
    child = sup.add(Child("scheduler", [sys.executable, "-c", family], _env, tmp_path / "scheduler.log"))
    try:
        grandchild = int(_until(lambda: (tmp_path / "scheduler.log").read_text().strip(), "the grandchild's pid").split()[-1])  # after its UTC time and level
        _until(lambda: grandchild in child.family, "the grandchild noted", every=sup.check)
        os.kill(child.proc.pid, signal.SIGKILL)
        _until(lambda: _gone(grandchild), "the grandchild gone with its parent", every=sup.check)
    finally:
        sup.stop()


def test_a_crash_loop_gives_up_after_five_quick_deaths_naming_the_log(tmp_path, capsys):
    sup = Supervisor(cwd=tmp_path, backoff_start=0.01, backoff_cap=0.02)
    sup.add(Child("crasher", [sys.executable, "-c", "print('cannot start: no frobnicator'); raise SystemExit(3)"], _env,
                  tmp_path / "crasher.log"))
    with pytest.raises(GiveUp) as gave_up:
        _until(lambda: False, "a give-up", timeout=60, every=sup.check)
    message = str(gave_up.value)
    assert "crasher exited with code 3" in message and "died 5 times in a row" in message
    assert str(tmp_path / "crasher.log") in message
    assert capsys.readouterr().out.count("restarting in") == 4  # four restarts, then the fifth death gives up
    assert (tmp_path / "crasher.log").read_text().count("no frobnicator") == 5


def test_a_child_refusing_its_settings_is_not_restarted(tmp_path):
    sup = Supervisor(cwd=tmp_path)
    sup.add(Child("picky", [sys.executable, "-c", "raise SystemExit(2)"], _env, tmp_path / "picky.log"))
    with pytest.raises(GiveUp, match=r"picky exited with code 2 \(a setting it refused\); see .*picky\.log"):
        _until(lambda: False, "a give-up", every=sup.check)


def test_a_child_that_finished_its_work_stays_finished(tmp_path, capsys):
    sup = Supervisor(cwd=tmp_path)
    child = sup.add(Child("replay", [sys.executable, "-c", "pass"], _env, tmp_path / "replay.log", finished_ok=True))
    _until(lambda: child.done, "done", every=sup.check)
    assert child.starts == 1 and "replay finished (code 0); it is not restarted" in capsys.readouterr().out


def test_secrets_are_masked_in_logs_and_echo_and_logs_are_private(tmp_path, capsys):
    log = tmp_path / "talker.log"
    log.write_bytes(b"an older run\n")
    log.chmod(0o644)
    sup = Supervisor(cwd=tmp_path, mask=lambda: ["s3cr3tPassw0rd"])
    child = sup.add(Child("talker", [sys.executable, "-c", "print(\"Password for user 'admin': s3cr3tPassw0rd\")"], _env,
                          log, echo=True, finished_ok=True))
    _until(lambda: child.done and "admin" in log.read_text(), "the line logged", every=sup.check)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    older, line = log.read_text().splitlines()
    assert older == "an older run" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO Password for user 'admin': \*\*\*", line)
    writer = sup.add(Child("writer", [sys.executable, "-c", "open('written.txt', 'w').write('x')"], _env,
                           tmp_path / "writer.log", finished_ok=True))
    _until(lambda: writer.done, "the writer done", every=sup.check)
    assert stat.S_IMODE((tmp_path / "written.txt").stat().st_mode) == 0o600  # what children write is private too
    out = capsys.readouterr().out
    assert re.search(r"\[talker\] \S+Z INFO Password for user 'admin': \*\*\*", out) and "s3cr3t" not in out


def test_stop_escalates_to_sigkill_for_a_child_that_ignores_sigterm(tmp_path, capsys):
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                                 " print('ready', flush=True); time.sleep(600)"], stdout=subprocess.PIPE,
                                start_new_session=True)
    assert stubborn.stdout.readline() == b"ready\n"
    killed = stop_groups([stubborn], grace=1.0)
    assert stubborn.returncode == -signal.SIGKILL and [p.pid for p in killed] == [stubborn.pid]
    assert f"supervisor: SIGKILL to pid {stubborn.pid} (" in capsys.readouterr().out


def test_a_second_stack_on_the_same_data_exits_1_naming_the_running_one(tmp_path):
    lock = StackLock(tmp_path)
    lock.acquire()
    try:
        second = subprocess.run([sys.executable, "-m", "devstack"], cwd=ROOT, capture_output=True, text=True,
                                env={**_env(), "KLINEPIPE_DATA_DIR": str(tmp_path)}, timeout=120)
        assert second.returncode == 1
        assert f"klinepipe is already running on {tmp_path} (pid {os.getpid()}); stop it first (kill {os.getpid()})" \
            in second.stderr
        assert "Traceback" not in second.stderr + second.stdout
    finally:
        lock.release()
    again = StackLock(tmp_path)  # released: the next one takes it
    again.acquire()
    again.release()


SUPERVISED = textwrap.dedent("""
    import subprocess, sys, time
    from pathlib import Path
    from devstack.stack_lock import StackLock
    from devstack.supervisor import Child, Supervisor
    from devstack.watchdog import Watchdog
    data = Path(sys.argv[1])
    lock = StackLock(data)
    lock.acquire()
    sup = Supervisor(cwd=data, watchdog=Watchdog(lock.fd, data / "watchdog.log"))
    # a child with a grandchild in its group and one that left it (setsid), as Airflow's task processes may
    family = ("import subprocess, sys, time;"
              "a = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
              "b = subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
              " time.sleep(600)'], start_new_session=True);"
              "print(a.pid, b.pid, flush=True); time.sleep(600)")
    env = lambda: dict(__import__("os").environ)
    sup.add(Child("family", [sys.executable, "-c", family], env, data / "family.log", echo=True))
    sup.add(Child("plain", [sys.executable, "-c", "import time; time.sleep(600)"], env, data / "plain.log"))
    print("children", *(c.proc.pid for c in sup.children.values()), flush=True)
    while True:
        sup.check()
        time.sleep(0.2)
""")


def test_nothing_outlives_a_supervisor_killed_with_sigkill(tmp_path):
    script = tmp_path / "supervised.py"
    script.write_text(SUPERVISED)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=_env(), stdout=subprocess.PIPE, text=True)
    said: dict[str, list[int]] = {}
    while len(said) < 2:  # "children <pid> <pid>" and the family's "[family] <pid> <pid>", in either order
        words = parent.stdout.readline().split()
        if words and words[0] in ("children", "[family]"):
            said[words[0]] = [int(w) for w in words[1:] if w.isdigit()]  # the echo has a UTC time and level first
    everyone = said["children"] + said["[family]"]
    assert len(everyone) == 4
    assert not any(_gone(p) for p in everyone)
    _until(lambda: "watching 4 processes" in (tmp_path / "watchdog.log").read_text(), "the watchdog sees the family")

    parent.kill()
    parent.wait()
    _until(lambda: all(_gone(p) for p in everyone), f"all of {everyone} gone: {_still(everyone)}", timeout=30)
    log = (tmp_path / "watchdog.log").read_text()
    assert "the supervisor died; stopping 2 process groups" in log
    _until(lambda: "watchdog: done" in (tmp_path / "watchdog.log").read_text(), "the watchdog done")
    next_stack = StackLock(tmp_path)  # the watchdog held the lock until the cleanup was over; now it is free
    next_stack.acquire(wait_for_dead_holder=30)
    next_stack.release()


def _still(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        if not _gone(pid):
            try:
                out.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())}")
            except psutil.Error as exc:  # a zombie not reaped yet, or gone meanwhile: no command line to show
                out.append(f"{pid}: {type(exc).__name__}")
    return out


def test_the_lock_names_its_holder_and_is_private(tmp_path):
    lock = StackLock(tmp_path)
    lock.acquire()
    try:
        path = Path(tmp_path / "run.lock")
        assert path.read_text() == f"{os.getpid()}\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        lock.release()


def test_the_banner_names_the_metrics_ports_the_sidecars_read(monkeypatch):
    from devstack.banner import metrics_url

    monkeypatch.delenv("STREAMING_METRICS_PORT", raising=False)
    assert metrics_url("STREAMING_METRICS_PORT", 9108) == "http://127.0.0.1:9108/metrics"
    monkeypatch.setenv("STREAMING_METRICS_PORT", "19108")
    assert metrics_url("STREAMING_METRICS_PORT", 9108) == "http://127.0.0.1:19108/metrics"
    monkeypatch.setenv("TRADER_METRICS_PORT", "0")
    assert metrics_url("TRADER_METRICS_PORT", 9102) == "no /metrics (TRADER_METRICS_PORT=0)"


def test_airflow_secrets_are_generated_once_into_private_files(tmp_path):
    import json

    from devstack.airflow_env import airflow_secrets

    passwords = tmp_path / "simple_auth_manager_passwords.json.generated"
    passwords.write_text(json.dumps({"admin": "keptFromLastRun1", "viewer": "v"}))  # as Airflow wrote it: 0644
    passwords.chmod(0o644)
    first = airflow_secrets(tmp_path)
    again = airflow_secrets(tmp_path)
    assert first == again and first["admin_password"] == "keptFromLastRun1"
    assert json.loads(passwords.read_text()) == {"admin": "keptFromLastRun1", "viewer": "v"}
    for path in (passwords, tmp_path / "klinepipe-secrets.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    passwords.unlink()
    fresh = airflow_secrets(tmp_path)["admin_password"]
    assert len(fresh) == 16 and fresh.isalnum() and fresh != "keptFromLastRun1"
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
