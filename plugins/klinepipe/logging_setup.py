"""Log lines people can read: a UTC timestamp and a level on every line, files capped and rotated.

``configure(program)`` sets up a program's own logging (streaming, trader, devstack):
``2026-12-01T15:50:57.123Z INFO streaming source=demo ...``. ``pump(...)`` is how ``make run`` keeps a child's
output: each line goes to ``<logs>/<name>.log`` (rotated at ``KLINEPIPE_LOG_MAX_BYTES``, keeping
``KLINEPIPE_LOG_BACKUPS`` old files) and, when asked, to the console; a line that has no timestamp of its
own (a ``print``) gets one, with INFO for standard output and ERROR for standard error (tracebacks,
refusals). No I/O library is imported here.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_BACKUPS = 3
_STAMPED = re.compile(rb"^\[?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d")  # a line that carries its own time already


class UtcFormatter(logging.Formatter):
    """``2026-12-01T15:50:57.123Z LEVEL name message``: ISO 8601, UTC, milliseconds."""

    converter = time.gmtime

    def __init__(self, program: str = "") -> None:
        prefix = f"{program} " if program else ""
        super().__init__(f"%(asctime)s %(levelname)s {prefix}%(name)s %(message)s")

    def formatTime(self, record, datefmt=None) -> str:  # noqa: N802 (logging's name)
        return utc_stamp(record.created)


def utc_stamp(at: float | None = None) -> str:
    at = time.time() if at is None else at
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


def configure(program: str = "", level: int = logging.INFO) -> None:
    """The program's log lines on stderr with UTC time and level (replaces earlier handlers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(UtcFormatter(program))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)


def rotating_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS) -> logging.Handler:
    """A size-capped file: ``path`` plus ``backups`` rotated copies (``path.1`` ...), written line by line
    (``make run`` takes both from ``KLINEPIPE_LOG_MAX_BYTES`` / ``KLINEPIPE_LOG_BACKUPS``: ``devstack.stack``)."""
    handler = _PrivateRotatingFile(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """A rotating log its owner only can read (0600, the rotated copies too): child output may name hosts,
    users and, before masking, secrets."""

    def _open(self):
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding)


def stamp(line: bytes, level: str) -> str:
    """The line as text with a UTC timestamp and ``level`` in front, unless it carries a time already."""
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    return text if _STAMPED.match(line) else f"{utc_stamp()} {level} {text}"


def pump(name: str, proc: subprocess.Popen, logs: Path, *, echo: bool) -> list[threading.Thread]:
    """Copy the child's stdout (and stderr, when it is a separate pipe) into ``logs/<name>.log``, capped and
    rotated, and to the console with a ``[name]`` prefix when ``echo``; return the (daemon) threads."""
    handler = rotating_file(logs / f"{name}.log")
    streams = [(s, level) for s, level in ((proc.stdout, "INFO"), (proc.stderr, "ERROR")) if s is not None]
    shared = {"lock": threading.Lock(), "open": len(streams), "handler": handler}
    threads = [threading.Thread(target=_copy, args=(name, stream, level, shared, echo), daemon=True,
                                name=f"log-{name}-{level.lower()}") for stream, level in streams]
    for t in threads:
        t.start()
    return threads


def _copy(name: str, stream, level: str, shared: dict, echo: bool) -> None:
    handler, lock = shared["handler"], shared["lock"]
    try:
        with stream:
            for line in stream:
                text = stamp(line, level)
                with lock:
                    handler.emit(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))
                    if echo:
                        sys.stdout.write(f"[{name}] {text}\n")
                        sys.stdout.flush()
    finally:
        with lock:
            shared["open"] -= 1
            if shared["open"] == 0:
                handler.close()
