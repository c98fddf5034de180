"""The layering of ../shared/design/ARCHITECTURE.md, enforced (STYLE 1).

* ``klinepipe`` (the library on Airflow's path) never imports ``streaming``, ``trader`` or ``devstack``; nor does
  anything else under ``plugins/`` (the Trading page).
* ``streaming`` and ``trader`` do not import each other, and import only the **pure** modules of ``klinepipe``:
  those whose import pulls in no I/O library (no Kafka, Postgres, HTTP or websocket client, no Airflow).
* DAG files import ``klinepipe``, the Trading page's package and the backtest core (``trader.backtest``) only.
* Dev tooling (``devstack``: ``make run``, embedded services) is imported by no production code, and imports
  neither sidecar: it runs them as processes.
* The pure modules below import no I/O library, checked in a fresh interpreter per module.

Imports are read with ``ast`` from every production file, the ones inside functions included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = [ROOT / "streaming", ROOT / "trader", ROOT / "devstack", ROOT / "dags", ROOT / "plugins"]
PROJECT = {"streaming", "trader", "devstack", "klinepipe", "klinepipe_trading", "tests", "bench"}
IO_LIBS = {"confluent_kafka", "psycopg2", "psycopg", "sqlalchemy", "websockets", "airflow", "requests", "binance",
           "httpx", "aiohttp", "prometheus_client"}

# Which project packages each part may import (itself always); a ``klinepipe`` entry of "pure" means its pure
# modules only, a dotted entry means that subpackage only.
MAY_IMPORT = {
    "klinepipe": {"klinepipe"},
    "klinepipe_trading": {"klinepipe", "klinepipe_trading"},
    "plugins": {"klinepipe", "klinepipe_trading"},  # plugins/klinepipe_trading_plugin.py
    "dags": {"klinepipe", "klinepipe_trading", "trader.backtest"},
    "streaming": {"streaming", "klinepipe:pure"},
    "trader": {"trader", "klinepipe:pure"},
    "devstack": {"devstack", "klinepipe"},
}

PURE = ["klinepipe.kline", "klinepipe.features", "klinepipe.dsn", "klinepipe.binance.intervals", "klinepipe.binance.events",
        "klinepipe.binance.rows", "klinepipe.binance.times", "klinepipe.binance.finality", "klinepipe.errors", "klinepipe.outage",
        "klinepipe.connection_file", "klinepipe.logging_setup", "klinepipe.lineage",
        "streaming.envelope", "streaming.replay", "streaming.demo_market", "streaming.closed_candle_ledger",
        "streaming.universe", "streaming.limits", "streaming.kafka_security", "streaming.kafka_sink_state",
        "trader.errors", "trader.filters", "trader.risk", "trader.risk.exposure", "trader.risk.killswitch",
        "trader.risk.symbol_status", "trader.notify.messages",
        "trader.risk.order_rate", "trader.risk.staleness", "trader.strategies", "trader.orders", "trader.brokers.paper",
        "trader.symbols", "trader.market", "trader.timestamps", "trader.bar_plan", "trader.sleeve", "trader.trades",
        # the backtest core, CLI included: files and arrays only
        "trader.backtest.candles", "trader.backtest.engine", "trader.backtest.metrics", "trader.backtest.runner",
        "trader.backtest.sweep", "trader.backtest.outputs", "trader.backtest.service", "trader.backtest.cli"]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT / "plugins" if path.is_relative_to(ROOT / "plugins") else ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _part(path: Path) -> str:
    """The part of the layout a file belongs to: its top-level package, ``dags`` or ``plugins``."""
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "plugins":
        return rel.parts[1] if len(rel.parts) > 2 else "plugins"
    return rel.parts[0]


def _imports(tree: ast.AST, *, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(module, line) of every import; ``from a import b`` gives ``a.b`` too, in case ``b`` is a module."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module, child.lineno))
                found.extend((f"{child.module}.{a.name}", child.lineno) for a in child.names)
            visit(child)

    visit(tree)
    return found


@cache
def _sources() -> dict[str, Path]:
    return {_module_name(p): p for d in PRODUCTION for p in d.rglob("*.py") if "__pycache__" not in p.parts}


@cache
def _io_pulled_in(module: str) -> tuple[str, ...]:
    """The I/O libraries that importing ``module`` loads, following the project's own modules (imports inside
    functions run later, on a call, and are not followed)."""
    path = _sources().get(module)
    if path is None:
        return ()
    pulled: set[str] = set()
    for name, _ in _imports(ast.parse(path.read_text()), top_level_only=True):
        top = name.split(".")[0]
        if top in IO_LIBS:
            pulled.add(top)
        elif top in PROJECT and name != module and name in _sources():
            pulled.update(_io_pulled_in(name))
    return tuple(sorted(pulled))


def _allowed(part: str, imported: str) -> bool:
    top = imported.split(".")[0]
    if top not in PROJECT or top == part:
        return True
    for rule in MAY_IMPORT[part]:
        package, _, only = rule.partition(":")
        if imported == package or imported.startswith(package + "."):
            return only != "pure" or imported not in _sources() or not _io_pulled_in(imported)
    return False


def _violations() -> list[str]:
    out = []
    for module, path in sorted(_sources().items()):
        part = _part(path)
        for imported, line in _imports(ast.parse(path.read_text())):
            if imported not in _sources() and imported.rpartition(".")[0] in _sources():
                continue  # a name imported from a module: the module's own entry says it
            if not _allowed(part, imported):
                why = _io_pulled_in(imported)
                detail = f" (not pure: it loads {', '.join(why)})" if why else ""
                out.append(f"{path.relative_to(ROOT)}:{line}: {part} may not import {imported}{detail}")
    return out


def test_every_import_follows_the_layering():
    assert len(_sources()) > 80, "found almost no production modules: did the layout change?"

    violations = _violations()

    assert not violations, "imports across the layering of ARCHITECTURE.md:\n" + "\n".join(violations)


def test_the_rule_catches_a_violation():
    """The checker itself: a plugin importing a sidecar or dev tooling, a sidecar importing klinepipe's I/O."""
    assert not _allowed("klinepipe", "trader.orders") and not _allowed("klinepipe", "devstack.embedded")
    assert not _allowed("klinepipe_trading", "streaming.envelope") and not _allowed("dags", "streaming.replay")
    assert not _allowed("streaming", "trader.orders") and not _allowed("trader", "streaming.envelope")
    assert not _allowed("streaming", "klinepipe.kafka_batch") and not _allowed("trader", "klinepipe.db")
    assert not _allowed("trader", "devstack.embedded") and not _allowed("devstack", "streaming.kafka_sink")
    assert _allowed("streaming", "klinepipe.binance.intervals") and _allowed("trader", "klinepipe.features")
    assert _allowed("dags", "trader.backtest.service") and not _allowed("dags", "trader.loop")


def test_the_listed_klinepipe_modules_are_pure_by_their_imports():
    impure = {m: _io_pulled_in(m) for m in PURE if m.startswith("klinepipe.") and _io_pulled_in(m)}

    assert not impure


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_library(module):
    code = f"import sys, {module}; print(','.join(m for m in {sorted(IO_LIBS)!r} if m in sys.modules))"

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    assert out == ""
