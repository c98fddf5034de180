"""Running README commands as a user types them: ``bash -c`` in a checkout of the project, with a home directory.

``Workdir`` is a fresh directory whose entries are links to the project's (``.venv``, ``data``, ``scripts``,
``Makefile`` …), so a command that writes ``.data/``, ``.env`` or ``btc.jsonl`` writes into the test's
directory, never the repository; ``HOME`` is a directory of its own (``~/Downloads`` …). ``python`` on the
``PATH`` is the project's venv, as for a user who activated it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import ROOT

_SKIP = {".git", ".data", ".env", ".venv-lock", "__pycache__", ".pytest_cache"}


class Workdir:
    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path, self.home = path / "checkout", path / "home"
        self.path.mkdir()
        self.home.mkdir()
        for entry in ROOT.iterdir():
            if entry.name not in _SKIP:
                (self.path / entry.name).symlink_to(entry)
        venv_bin = ROOT / ".venv" / "bin"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "KLINEPIPE_", "STREAMING_", "TRADER_",
                                                                            "KAFKA_", "BINANCE_", "DATABASE_URL", "PYTEST"))}
        self.env = {**base, "HOME": str(self.home), "PATH": f"{venv_bin}{os.pathsep}{base.get('PATH', '')}",
                    "VIRTUAL_ENV": str(ROOT / ".venv"), **env}

    def run(self, command: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess:
        """Run ``command`` to its end (stdout and stderr together in ``.stdout``)."""
        return subprocess.run(["bash", "-c", command], cwd=self.path, env={**self.env, **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, start_new_session=True)

    def start(self, command: str, unset: tuple[str, ...] = (), **env: str) -> Started:
        """Start a long-running ``command`` (a server, a stream, the trader) to stop later as Ctrl-C would;
        ``unset``: variables of the stack's environment it must not see."""
        return Started(command, self.path, {k: v for k, v in {**self.env, **env}.items() if k not in unset})


class Started:
    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.command = command
        self.proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match:
        """The first output line matching ``pattern``; fails with the output when the process ends or time is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"{self.command!r} exited {self.proc.returncode} before {pattern!r}:\n{self.output[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} from {self.command!r} within {timeout}s:\n{self.output[-4000:]}")

    def until(self, check, timeout: float = 60, what: str = "condition"):
        """Poll ``check()`` until it returns something truthy (the process must keep running meanwhile)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := check():
                return value
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"{self.command!r} exited {self.proc.returncode} before {what}:\n{self.output[-4000:]}")
            time.sleep(0.3)
        raise AssertionError(f"no {what} from {self.command!r} within {timeout}s:\n{self.output[-4000:]}")

    def interrupt(self, timeout: float = 90, sig: int = signal.SIGINT) -> int:
        """Ctrl-C (SIGINT to the process group, as a terminal sends it); the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise AssertionError(f"{self.command!r} did not stop within {timeout}s of {signal.Signals(sig).name}:\n"
                                 f"{self.output[-4000:]}") from None
        self._reader.join(5)
        return code

    def kill(self) -> None:
        """Clean-up after a failed test: nothing of it may outlive the test."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
