"""Issue 14's rule, kept: no production module over 300 lines (split by what it owns instead)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("streaming", "trader", "devstack", "dags", "plugins")
MAX_LINES = 300


def test_no_production_module_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for part in PRODUCTION for p in sorted((ROOT / part).rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"over {MAX_LINES} lines: {long}"
