"""A ``python -m devstack`` process for the stack tests, its output collected and its children named."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import sqlalchemy as sa

from devstack.embedded import free_port
from tests.conftest import ROOT


class Run:
    """One ``python -m devstack`` process with its output collected."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
        env.update({"KLINEPIPE_DATA_DIR": str(data_dir), "AIRFLOW_PORT": str(free_port()),
                    "STREAMING_REPLAY_SPEED": "600x", "STREAMING_MODE": "replay", **settings})
        self.proc = subprocess.Popen([sys.executable, "-m", "devstack"], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            assert self.proc.poll() is None, "".join(self.lines[-40:])
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} within {timeout}s:\n{''.join(self.lines[-40:])}")

    def lines_since(self, start: int, pattern: str) -> bool:
        return any(re.search(pattern, line) for line in self.lines[start:])

    def pid_of(self, name: str) -> int:
        """The pid of the newest start of the supervisor's child ``name``."""
        pids = [int(m.group(1)) for line in list(self.lines)
                if (m := re.search(rf"^supervisor: {re.escape(name)} started \(pid (\d+)", line))]
        assert pids, f"no {name} started:\n{''.join(self.lines[-40:])}"
        return pids[-1]

    def wait_for_new(self, name: str, old: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.pid_of(name)
            if pid != old and psutil.pid_exists(pid) and alive(psutil.Process(pid)):
                return pid
            assert self.proc.poll() is None, "".join(self.lines[-40:])
            time.sleep(0.2)
        raise AssertionError(f"{name} not restarted within {timeout}s:\n{''.join(self.lines[-40:])}")

    def family(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:  # it ended already (the test failed on that): nothing to collect
            return []

    def stop(self) -> list[psutil.Process]:
        family = self.family()
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=90)
        print(f"make run stopped {len(family) - 1} processes in {time.monotonic() - started:.1f} s after SIGTERM")
        time.sleep(1)
        return [p for p in family if alive(p)]


def alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def count(url: str, sql: str):
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as c:
            return c.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()
