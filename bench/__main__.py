"""Run benchmarks: every ``bench/bench_*.py`` module's ``main()``, or the ones named on the command line."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    names = sorted(m.name.removeprefix("bench_") for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                   if m.name.startswith("bench_"))
    chosen = argv or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    failed = 0
    for name in chosen:
        print(f"\n=== bench {name} ===", flush=True)
        failed |= int(importlib.import_module(f"bench.bench_{name}").main() or 0)
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
