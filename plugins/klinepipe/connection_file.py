"""Where the running ``make run`` stack can be found: ``<data dir>/stack.env``, for the CLIs started beside it.

``make run`` writes the file once its services answer (mode 0600: it holds the database password) and
removes it when it stops; a file whose writer is gone (a ``kill -9``) is stale and ignored, with a word.
It is a shell file, so ``. .data/stack.env`` sets the same variables in a shell. The CLIs (streaming,
trader, backtest) take from it only the settings that are unset, and say so in one line on stderr.
No I/O library is imported here: the backtest CLI, a pure module, uses it too.
"""

from __future__ import annotations

import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILE_NAME = "stack.env"
KEYS = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "AIRFLOW_URL")


def data_dir() -> Path:
    return Path(os.environ.get("KLINEPIPE_DATA_DIR", ROOT / ".data")).resolve()


def path(directory: Path | None = None) -> Path:
    return (directory or data_dir()) / FILE_NAME


def write(settings: dict[str, str], *, pid: int, since: datetime, parts: dict[str, int] | None = None,
          restarts: dict[str, int] | None = None, directory: Path | None = None) -> Path:
    """Write the stack's settings, and the pid and restarts of each process it runs (0600 from the first byte)."""
    target = path(directory)
    started = since.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    lines = [f"# the running klinepipe stack (make run, pid {pid}, since {started}); removed when it stops",
             f"# in a shell: . {target}", f"KLINEPIPE_STACK_PID={pid}", f"KLINEPIPE_STACK_SINCE={started}"]
    lines += [f"KLINEPIPE_PID_{part_key(name)}={p}" for name, p in (parts or {}).items()]
    lines += [f"KLINEPIPE_RESTARTS_{part_key(name)}={n}" for name, n in (restarts or {}).items()]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in settings.items() if v]
    tmp = target.with_name(f".{FILE_NAME}.{pid}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, target)
    return target


def remove(*, pid: int, directory: Path | None = None) -> None:
    """Remove the file if this process wrote it (never another running stack's)."""
    found = read(directory)
    if found is not None and found.get("KLINEPIPE_STACK_PID") == str(pid):
        path(directory).unlink(missing_ok=True)


def read(directory: Path | None = None) -> dict[str, str] | None:
    """The file's variables (``None`` when there is no file)."""
    try:
        text = path(directory).read_text()
    except FileNotFoundError:
        return None
    out: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        if len(words) == 1 and "=" in words[0]:
            key, _, value = words[0].partition("=")
            out[key] = value
    return out


def is_running(found: dict[str, str]) -> bool:
    try:
        os.kill(int(found.get("KLINEPIPE_STACK_PID", "0")), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return int(found.get("KLINEPIPE_STACK_PID", "0")) > 0


def fill_unset(keys: tuple[str, ...], program: str, *, also_set_by: dict[str, str] | None = None,
               directory: Path | None = None) -> list[str]:
    """Set the unset ``keys`` from the running stack's file; say so in one line; return the keys set.

    ``also_set_by`` names another variable that counts as setting a key (``TRADER_DATABASE_URL``)."""
    aliases = also_set_by or {}
    missing = [k for k in keys if not os.environ.get(k) and not os.environ.get(aliases.get(k, ""), "")]
    if not missing:
        return []
    found = read(directory)
    if found is None:
        return []
    if not is_running(found):
        print(f"{program}: ignoring {path(directory)}: the stack that wrote it (pid {found.get('KLINEPIPE_STACK_PID')})"
              " is not running", file=sys.stderr)
        return []
    taken = [k for k in missing if found.get(k)]
    for k in taken:
        os.environ[k] = found[k]
    if taken:
        print(f"{program}: using the running stack's {', '.join(taken)} from {path(directory)}"
              f" (make run, pid {found['KLINEPIPE_STACK_PID']})", file=sys.stderr)
    return taken


def export_lines(settings: dict[str, str]) -> list[str]:
    """The lines a user pastes into another shell to reach this stack."""
    return [f"export {k}={shlex.quote(v)}" for k, v in settings.items() if v]


def part_key(name: str) -> str:
    """A part's name as a shell variable suffix: ``airflow-scheduler`` -> ``AIRFLOW_SCHEDULER`` (the file is sourced)."""
    return name.upper().replace("-", "_")
