"""``make run``'s process supervisor: start children, restart the ones that die, stop them all.

Dev tooling, not part of the library the Airflow workers import (one stack per data directory:
``devstack.stack_lock``). Pieces:

* ``Supervisor`` -- each child in its own session (process group), dying with the supervisor even when the
  supervisor is SIGKILLed (``PR_SET_PDEATHSIG`` in the child, plus the ``devstack.watchdog`` process for the
  grandchildren and the embedded PostgreSQL). A child that dies is restarted after a backoff (1 s doubling to
  30 s, reset once it stayed up); ``max_quick_deaths`` deaths in a row, each soon after its start, are a crash
  loop: the supervisor gives up naming the child's log. ``stop()`` sends SIGTERM to every child's process group
  and SIGKILL to what is left after ``grace`` seconds.
* Child logs are private (0600) and every secret given to ``mask`` is replaced by ``***`` before a line is
  written or echoed.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from klinepipe import logging_setup

log = logging.getLogger("supervisor")

PR_SET_PDEATHSIG = 1


class GiveUp(Exception):
    """A child crash-loops (or refused its settings): the stack stops with this message, exit 1."""


def private_log(path: Path):
    """Open ``path`` for appending, readable by its owner only (an existing file is made private too)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def _die_with_parent(parent: int) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:  # runs in the child between fork and exec
        os.setsid()
        os.umask(0o077)  # what a child writes (Airflow's task logs, reports) is its owner's only
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
            os._exit(1)

    return preexec


@dataclass
class Child:
    """One supervised command. ``env`` is called on every (re)start. ``finished_ok``: exit 0 means done (no
    restart). ``ready``: called after a (re)start, returns once the child serves (raise to count it dead).
    ``on_restart``: called (in the supervisor's thread) after a restart of this child is up."""

    name: str
    argv: list[str]
    env: Callable[[], dict]
    log_path: Path
    echo: bool = False
    finished_ok: bool = False
    ready: Callable[[], None] | None = None
    on_restart: Callable[[], None] | None = None
    on_line: Callable[[str], None] | None = None
    proc: subprocess.Popen | None = None
    pump: threading.Thread | None = None
    started_at: float = 0.0
    starts: int = 0
    quick_deaths: int = 0
    restart_at: float | None = None
    done: bool = False
    history: list[tuple[float, int]] = field(default_factory=list)  # (when, exit code) of each death
    family: dict[int, psutil.Process] = field(default_factory=dict)  # descendants seen (some leave its group)


def log_limits(environ) -> tuple[int, int]:
    """``KLINEPIPE_LOG_MAX_BYTES`` / ``KLINEPIPE_LOG_BACKUPS`` (defaults 10 MiB / 3); ``GiveUp`` naming a bad one."""
    limits = []
    for name, default in (("KLINEPIPE_LOG_MAX_BYTES", logging_setup.DEFAULT_MAX_BYTES), ("KLINEPIPE_LOG_BACKUPS", logging_setup.DEFAULT_BACKUPS)):
        text = environ.get(name, "").strip() or str(default)
        if not text.isdigit() or (name.endswith("BYTES") and int(text) == 0):
            raise GiveUp(f"invalid setting {name}: {text!r} is not a whole number" + (" above 0" if name.endswith("BYTES") else ""))
        limits.append(int(text))
    return limits[0], limits[1]


class Supervisor:
    def __init__(self, *, cwd: Path, mask: Callable[[], list[str]] = list, backoff_start: float = 1.0,
                 backoff_cap: float = 30.0, quick: float = 60.0, max_quick_deaths: int = 5, grace: float = 20.0,
                 watchdog=None, log_limits: tuple[int, int] = (logging_setup.DEFAULT_MAX_BYTES, logging_setup.DEFAULT_BACKUPS)) -> None:
        self.children: dict[str, Child] = {}
        self.log_limits = log_limits  # each child's log: rotated at this many bytes, keeping this many old files
        self.cwd, self._mask = cwd, mask
        self.backoff_start, self.backoff_cap, self.quick = backoff_start, backoff_cap, quick
        self.max_quick_deaths, self.grace = max_quick_deaths, grace
        self.watchdog = watchdog
        self._noted = 0.0

    # ---- starting -------------------------------------------------------------------------------------
    def add(self, child: Child) -> Child:
        """Start ``child`` now (from the supervisor's thread: PDEATHSIG follows the thread that forked)."""
        self.children[child.name] = child
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        logfile = logging_setup.rotating_file(child.log_path, *self.log_limits)  # private, capped and rotated
        child.proc = subprocess.Popen(child.argv, cwd=self.cwd, env=child.env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      preexec_fn=_die_with_parent(os.getpid()))
        child.started_at, child.restart_at = time.monotonic(), None
        child.starts += 1
        if self.watchdog is not None:
            self.watchdog.adopt(child.proc.pid)
        print(f"supervisor: {child.name} started (pid {child.proc.pid}, log {child.log_path})", flush=True)
        child.pump = threading.Thread(target=self._pump, args=(child, child.proc, logfile), daemon=True,
                                      name=f"pump-{child.name}")
        child.pump.start()

    def _pump(self, child: Child, proc: subprocess.Popen, logfile: logging.Handler) -> None:
        """Each line of the child: secrets masked, a UTC time and level in front unless it has its own, into
        its capped and rotated log file and, when ``echo``, onto the terminal."""
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace")
                for secret in self._mask():
                    if secret and secret in line:
                        line = line.replace(secret, "***")
                text = logging_setup.stamp(line.encode(), "INFO")
                logfile.emit(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))
                if child.on_line is not None:
                    child.on_line(line)
                if child.echo:
                    sys.stdout.write(f"[{child.name}] {text}\n")
                    sys.stdout.flush()
        finally:
            logfile.close()

    # ---- watching -------------------------------------------------------------------------------------
    def check(self) -> None:
        """One round: notice deaths, restart those due. Raises ``GiveUp`` on a crash loop."""
        now = time.monotonic()
        if now - self._noted >= 1.0:
            self._noted = now
            self._note_families()
        for child in list(self.children.values()):
            if child.done or child.proc is None:
                continue
            if child.restart_at is None:
                code = child.proc.poll()
                if code is None:
                    if now - child.started_at >= self.quick:
                        child.quick_deaths = 0  # it stayed up: the next death starts the backoff again
                    continue
                self._died(child, code, now)
            elif now >= child.restart_at:
                print(f"supervisor: restarting {child.name} (start {child.starts + 1})", flush=True)
                self._spawn(child)
                try:
                    if child.ready is not None:
                        child.ready()
                except Exception as exc:  # noqa: BLE001 - a child that does not come up is a death like any other
                    print(f"supervisor: {child.name} did not come up ({exc})", flush=True)
                    _kill_group(child.proc, signal.SIGKILL)
                    child.proc.wait()
                    continue
                if child.on_restart is not None:
                    try:
                        child.on_restart()
                    except Exception as exc:  # noqa: BLE001 - what follows a restart must not stop the supervision
                        print(f"supervisor: after restarting {child.name}: {type(exc).__name__}: {exc}", flush=True)

    def _note_families(self) -> None:
        """Remember each running child's descendants: once it is dead they are no longer found through it
        (Airflow's task processes run in process groups of their own)."""
        for child in self.children.values():
            if child.proc is None or child.proc.poll() is not None:
                continue
            try:
                for p in psutil.Process(child.proc.pid).children(recursive=True):
                    child.family.setdefault(p.pid, p)
            except psutil.NoSuchProcess:
                continue
            child.family = {pid: p for pid, p in child.family.items() if p.is_running()}

    def _died(self, child: Child, code: int, now: float) -> None:
        lived = now - child.started_at
        child.history.append((time.time(), code))
        _kill_group(child.proc, signal.SIGKILL)  # what it left behind goes with it: its group and its descendants
        for p in child.family.values():
            try:
                p.kill()  # psutil checks the pid was not reused since it was noted
            except psutil.Error:
                pass
        child.family = {}
        if child.pump is not None:
            child.pump.join(timeout=2)  # its last words are in its log before the line saying it died
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        if code == 0 and child.finished_ok:
            child.done = True
            print(f"supervisor: {child.name} finished (code 0); it is not restarted", flush=True)
            return
        if code == 2:  # the project's exit code for a bad setting: starting it again cannot help
            raise GiveUp(f"{child.name} {how} (a setting it refused); see {child.log_path}")
        child.quick_deaths = child.quick_deaths + 1 if lived < self.quick else 1
        if child.quick_deaths >= self.max_quick_deaths:
            raise GiveUp(f"{child.name} {how}; it died {child.quick_deaths} times in a row, each within "
                         f"{self.quick:.0f} s of starting: giving up. See {child.log_path}")
        delay = min(self.backoff_start * 2 ** (child.quick_deaths - 1), self.backoff_cap)
        child.restart_at = now + delay
        print(f"supervisor: {child.name} (pid {child.proc.pid}) {how} after {lived:.1f} s; restarting in {delay:g} s"
              f" (see {child.log_path})", flush=True)

    def restart_now(self, name: str, why: str) -> None:
        """Stop ``name`` (if running) and start it again at once, e.g. after the broker it feeds was replaced."""
        child = self.children.get(name)
        if child is None or child.proc is None:
            return
        print(f"supervisor: restarting {name}: {why}", flush=True)
        stop_groups([child.proc], grace=5.0)  # what it still holds is published again by its successor
        child.done = False
        self._spawn(child)

    # ---- stopping -------------------------------------------------------------------------------------
    def stop(self, order: list[str] | None = None) -> None:
        chosen = [self.children[n] for n in (order or list(self.children)) if n in self.children]
        stop_groups([c.proc for c in chosen if c.proc is not None], grace=self.grace,
                    strays=[p for c in chosen for p in c.family.values()])


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_groups(procs: list[subprocess.Popen], grace: float, strays: list[psutil.Process] = ()) -> list[psutil.Process]:
    """SIGTERM each child's process group and every descendant (a grandchild may have left the group), and the
    ``strays`` noted earlier; after ``grace`` seconds SIGKILL whatever is left. Returns what had to be killed."""
    family: list[psutil.Process] = [p for p in strays if p.is_running()]
    for proc in procs:
        try:
            root = psutil.Process(proc.pid)
            family += [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for proc in procs:
        _kill_group(proc, signal.SIGTERM)
    for p in family:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.2)
    _, alive = psutil.wait_procs(family, timeout=max(0.0, deadline - time.monotonic()))
    for p in alive:
        try:
            title = " ".join(p.cmdline())[:80]
            p.kill()
            print(f"supervisor: SIGKILL to pid {p.pid} ({title}): still running {grace:g} s after SIGTERM", flush=True)
        except psutil.NoSuchProcess:
            pass
    for proc in procs:
        _kill_group(proc, signal.SIGKILL)
        proc.wait()
    return alive
