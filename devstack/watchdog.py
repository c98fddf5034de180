"""The supervisor's watchdog: when ``make run`` dies, even by SIGKILL, nothing it started outlives it.

``python -m devstack.watchdog`` runs in its own session with the read end of a pipe as stdin; only the
supervisor holds the write end. It reads lines:

* ``adopt <pid>`` -- a child (the leader of its own process group) to stop;
* ``postgres <datadir>`` -- an embedded PostgreSQL to stop;
* ``bye`` -- the supervisor stopped everything itself: exit without doing anything.

End of input without ``bye`` means the supervisor died. Then it sends SIGTERM to every adopted process group
and every descendant it saw (every second it notes them: a grandchild may have left the group), SIGKILL
after a grace, and a fast shutdown to PostgreSQL. It holds the stack's lock (inherited), so a new ``make run``
starts only once this cleanup is over.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from pathlib import Path

import psutil

GRACE = 10.0


class Watchdog:
    """The supervisor's side: start the watchdog process and tell it what to stop."""

    def __init__(self, lock_fd: int | None, log_path: Path) -> None:
        import subprocess

        from devstack.supervisor import private_log

        read, self._write = os.pipe()
        os.set_inheritable(self._write, False)
        with private_log(log_path) as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "devstack.watchdog"], stdin=read, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         pass_fds=() if lock_fd is None else (lock_fd,))
        os.close(read)

    def _say(self, line: str) -> None:
        try:
            os.write(self._write, f"{line}\n".encode())
        except OSError:
            pass

    def adopt(self, pid: int) -> None:
        self._say(f"adopt {pid}")

    def postgres(self, datadir: Path) -> None:
        self._say(f"postgres {datadir}")

    def bye(self) -> None:
        self._say("bye")
        os.close(self._write)
        try:
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - it exits on its own; never block a stop on it
            pass


def main() -> int:
    groups: set[int] = set()
    seen: dict[int, psutil.Process] = {}
    datadirs: list[Path] = []
    buf = b""
    watching = 0
    while True:
        ready, _, _ = select.select([0], [], [], 1.0)
        if ready:
            chunk = os.read(0, 4096)
            if not chunk:
                break  # the supervisor is gone
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                word, _, arg = line.decode().partition(" ")
                if word == "bye":
                    return 0
                if word == "adopt":
                    groups.add(int(arg))
                elif word == "postgres":
                    datadirs.append(Path(arg))
        for pid in list(groups):  # note the family as it is now: after a SIGKILL the tree is gone
            try:
                root = psutil.Process(pid)
                for p in (root, *root.children(recursive=True)):
                    seen.setdefault(p.pid, p)
            except psutil.NoSuchProcess:
                if not _group_exists(pid):
                    groups.discard(pid)
        for pid, p in list(seen.items()):
            if not p.is_running():
                del seen[pid]
        if len(seen) > watching:  # a new high: one line, not one per task process that comes and goes
            watching = len(seen)
            print(f"watchdog: watching {watching} processes", flush=True)
    print(f"watchdog: the supervisor died; stopping {len(groups)} process groups and {len(seen)} processes", flush=True)
    cleanup(groups, list(seen.values()), datadirs)
    return 0


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _signal_all(groups: set[int], procs: list[psutil.Process], sig: int) -> None:
    for pgid in groups:
        _signal_group(pgid, sig)
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass


def cleanup(groups: set[int], procs: list[psutil.Process], datadirs: list[Path]) -> None:
    _signal_all(groups, procs, signal.SIGTERM)
    for d in datadirs:
        _stop_postgres(d, signal.SIGINT)  # fast shutdown: roll back open transactions, checkpoint, exit
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline and (any(_group_exists(g) for g in groups) or any(p.is_running() for p in procs)):
        time.sleep(0.2)
    _signal_all(groups, procs, signal.SIGKILL)
    for d in datadirs:
        pid = _postgres_pid(d)
        end = time.monotonic() + GRACE
        while pid and psutil.pid_exists(pid) and time.monotonic() < end:
            time.sleep(0.2)
        _stop_postgres(d, signal.SIGQUIT)  # immediate shutdown if it did not stop in time
    print("watchdog: done", flush=True)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _postgres_pid(datadir: Path) -> int:
    try:
        return int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return 0


def _stop_postgres(datadir: Path, sig: int) -> None:
    pid = _postgres_pid(datadir)
    if pid:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    sys.exit(main())
