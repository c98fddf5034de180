"""``python -m trader new-strategy NAME`` and ``python -m trader check-strategy NAME``: the user's own strategies,
in the directory ``--dir`` or ``TRADER_STRATEGY_DIR`` names. Offline: no database, no trader settings.

``check-strategy`` prints one line per finding (look-ahead, warm-up, features) and exits 1 when one is a
problem, 2 when the strategy cannot even be loaded or built.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "BTCUSDT-1m.csv.gz"


def add_strategy_parsers(sub) -> None:
    new = sub.add_parser("new-strategy", help="write a documented template strategy NAME and a pytest test for it into the "
                                              "strategy directory (never overwrites)")
    new.add_argument("name", help="a lower-case Python identifier, e.g. my_trend")
    new.add_argument("--dir", type=Path, help="the strategy directory (default: $TRADER_STRATEGY_DIR)")
    new.set_defaults(func=cmd_new_strategy)
    check = sub.add_parser("check-strategy", help="look-ahead and warm-up analysis of a strategy (exit 1 on a problem)")
    check.add_argument("name", help="a strategy of the strategy directory (or a bundled one)")
    check.add_argument("--dir", type=Path, help="the strategy directory (default: $TRADER_STRATEGY_DIR)")
    check.add_argument("--params", type=json.loads, default={}, help='parameters as JSON, e.g. \'{"fast": 10, "slow": 50}\'')
    check.add_argument("--csv", type=Path, default=SAMPLE, help="Binance kline file to check on (default: the bundled "
                                                                "BTCUSDT 1m sample)")
    check.add_argument("--bars", type=int, default=2500, help="check on the first BARS candles (default 2500)")
    check.set_defaults(func=cmd_check_strategy)


def strategy_dir(args: argparse.Namespace, required: bool) -> Path | None:
    """``--dir``, else ``TRADER_STRATEGY_DIR``; ``ValueError`` naming both when required and neither is set."""
    from trader.config import BacktestSettings

    found = args.dir or BacktestSettings().strategy_dir
    if found is None and required:
        raise ValueError("no strategy directory: set TRADER_STRATEGY_DIR or pass --dir")
    return found


def raised_at(exc: BaseException, directory: Path | None) -> str:
    """`` at my_trend.py:12``: the innermost line of a file in the strategy directory that ``exc`` passed, else ``""``."""
    if directory is None:
        return ""
    inside = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).parent == directory.resolve()]
    return f" at {Path(inside[-1].filename).name}:{inside[-1].lineno}" if inside else ""


def cmd_new_strategy(args: argparse.Namespace) -> int:
    from trader.strategy_template import write_template

    try:
        strategy_file, test_file = write_template(strategy_dir(args, required=True), args.name)
    except (ValueError, FileExistsError) as exc:
        print(f"new-strategy: {exc}", file=sys.stderr)
        return 2
    print(f"new-strategy: wrote {strategy_file} and {test_file}\n"
          f"new-strategy: next: edit it, run `python -m pytest {test_file}`, then `python -m trader check-strategy {args.name}`")
    return 0


def cmd_check_strategy(args: argparse.Namespace) -> int:
    from trader.backtest.candles import read_kline_file
    from trader.backtest.strategy_checks import check_strategy
    from trader.strategies import build_strategy, register_strategy_dir

    directory = None
    try:
        directory = strategy_dir(args, required=False)
        if directory is not None:
            register_strategy_dir(directory)
        strategy = build_strategy(args.name, **args.params)
        candles = read_kline_file(args.csv).iloc[: args.bars].reset_index(drop=True)
        findings = check_strategy(candles, lambda: build_strategy(args.name, **args.params))
    except (ValueError, LookupError, OSError) as exc:
        print(f"check-strategy: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the user's strategy raised: say where, not a traceback
        print(f"check-strategy: {args.name} raised {type(exc).__name__}{raised_at(exc, directory)}: {exc}", file=sys.stderr)
        return 2
    shown = ", ".join(f"{k}={v}" for k, v in strategy.params.items())
    print(f"check-strategy: {args.name} ({shown}) on {len(candles)} candles of {args.csv.name}")
    for f in findings:
        print(f"{f.check}: {'PROBLEM' if f.problem else 'ok'}: {f.line}")
    problems = sum(f.problem for f in findings)
    print(f"check-strategy: {problems} problem(s)" if problems else "check-strategy: no problems found")
    return 1 if problems else 0
