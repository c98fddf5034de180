"""The commands the README tells a user to type, read from ``README.md`` itself (so the tests cannot drift from it).

A command is
* a line of a fenced ```` ```sh ```` / ```` ```bash ```` block (``\\`` continues a line; a trailing ``# comment`` is
  dropped, as the shell would);
* an inline code span, anywhere in the text or a table, that starts like a command: optional ``VAR=value``
  assignments, then ``python``/``.venv/bin/python``, ``make``, ``docker``, ``psql`` or ``airflow`` with an
  argument, or a ``scripts/…`` file;
* a statement of a fenced ```` ```sql ```` block, or an inline span starting with ``SELECT``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^\s*```(\w*)\s*$")
_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# a program followed by an argument (``make run``, ``python -m trader status``, ``scripts/make-env.sh``): a bare name
# in prose (``airflow``, ``psql``) is not a command
_SHELL_START = re.compile(r"^(?:[A-Z][A-Z0-9_]*=\S+\s+)*(?:(?:\.venv/bin/)?(?:python3?|make|docker|psql|airflow)\s+\S|scripts/\S+)")


@dataclass(frozen=True)
class Command:
    text: str  # as a user would type it (comment dropped, continuations joined)
    kind: str  # "sh" or "sql"
    section: str  # the ``##`` heading it is under
    line: int  # 1-based line in README.md
    inline: bool  # an inline code span rather than a fenced block

    @property
    def id(self) -> str:
        return f"L{self.line}:{self.text[:60]}"


def _strip_comment(line: str) -> str:
    """``cmd --x 1   # what it does`` -> ``cmd --x 1``: a ``#`` outside quotes that starts a word."""
    quote, prev = None, " "
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and prev.isspace():
            return line[:i].rstrip()
        prev = ch
    return line.rstrip()


def read_commands(path: Path = README) -> list[Command]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Command] = []
    section, fence, pending, start = "", None, "", 0
    sql: list[tuple[int, str]] = []
    for n, raw in enumerate(lines, 1):
        m = _FENCE.match(raw)
        if fence is None and m:
            fence = m.group(1).lower() or "text"
            continue
        if fence is not None and m and not m.group(1):
            if fence == "sql":
                out += _sql_statements(sql, section)
                sql = []
            fence = None
            continue
        if fence in ("sh", "bash", "shell"):
            text = _strip_comment(raw) if not pending else raw.rstrip()
            if not text.strip():
                continue
            if text.endswith("\\"):
                pending, start = pending + text[:-1].strip() + " ", start or n
                continue
            out.append(Command((pending + text.strip()).strip(), "sh", section, start or n, False))
            pending, start = "", 0
            continue
        if fence == "sql":
            sql.append((n, raw))
            continue
        if fence is not None:
            continue
        if raw.startswith("## "):
            section = raw[3:].strip()
        for span in _SPAN.findall(raw):
            span = span.strip()
            if _SHELL_START.match(span):
                out.append(Command(span, "sh", section, n, True))
            elif re.match(r"^SELECT\s", span, re.I):
                out.append(Command(span, "sql", section, n, True))
    return out


def _sql_statements(block: list[tuple[int, str]], section: str) -> list[Command]:
    out, buf, first = [], [], 0
    for n, raw in block:
        if not raw.strip() and not buf:
            continue
        first = first or n
        buf.append(raw.strip())
        if raw.rstrip().endswith(";"):
            out.append(Command(" ".join(b for b in buf if b), "sql", section, first, False))
            buf, first = [], 0
    if any(buf):
        out.append(Command(" ".join(b for b in buf if b), "sql", section, first, False))
    return out
