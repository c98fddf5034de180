"""One ``make run`` stack per data directory: an exclusive ``flock`` on ``<data>/run.lock``, which names the
holder's pid. The watchdog inherits the lock, so a new stack starts only once the last one's cleanup is over."""

from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

import psutil


class StackLock:
    """An exclusive ``flock`` on ``<data>/run.lock`` held for the supervisor's life (and its watchdog's)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "run.lock"
        self.fd: int | None = None

    def acquire(self, *, wait_for_dead_holder: float = 45.0) -> None:
        """Take the lock or ``sys.exit`` naming the running stack. A holder whose supervisor is gone (its
        watchdog still stopping the children) is waited for, up to ``wait_for_dead_holder`` seconds."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait_for_dead_holder
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pid = _read_pid(fd)
                if pid and psutil.pid_exists(pid):
                    os.close(fd)
                    sys.exit(f"klinepipe is already running on {self.path.parent} (pid {pid}); "
                             f"stop it first (kill {pid}) or use another KLINEPIPE_DATA_DIR")
                if time.monotonic() > deadline:
                    os.close(fd)
                    sys.exit(f"the last klinepipe on {self.path.parent} (pid {pid or '?'}) is gone but its processes "
                             f"still hold {self.path}; see `fuser -v {self.path}`")
                if not said:
                    print(f"the last klinepipe (pid {pid or '?'}) is still stopping its processes; waiting ...", flush=True)
                    said = True
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None


def _read_pid(fd: int) -> int:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0)
    except (ValueError, OSError):
        return 0
