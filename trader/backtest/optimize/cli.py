"""``python -m trader optimize``: arguments -> ``OptimizeRequest`` -> ``execute`` -> the verdict on the console.

The studies live in PostgreSQL (``--storage``, default the candles' database: ``--database-url``, ``$DATABASE_URL``
or the running ``make run`` stack's); running the same command again resumes them with more trials.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from trader.backtest.cli import (DEFAULT_REPORTS, add_candle_args, add_fill_args, add_output_args, fill_model,
                                 load_user_strategies, resolve_database_url, run_reported)
from trader.backtest.optimize.evaluate import OBJECTIVES
from trader.backtest.optimize.study import SAMPLERS
from trader.strategies import REGISTRY

_SPACE_HELP = ('search space as JSON or TOML text, or a .json/.toml file, e.g. \'{"fast": {"int": [2, 50]}, '
               '"slow": {"int": [10, 200]}, "constraints": ["fast < slow"]}\'; also {"float": [lo, hi]}, '
               '{"choices": [...]}, "step", "log" (default: the ranges the strategy declares)')


def add_optimize_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("optimize", help="tune a strategy's parameters with Optuna, walk-forward, studies in PostgreSQL",
                              description="Tune a strategy's parameters with Optuna on in-sample windows and check each "
                                          "choice on the next, unseen window (walk-forward).")
    add_candle_args(p)
    p.add_argument("--strategy", default="sma_cross", help=f"one of: {', '.join(sorted(REGISTRY))} (default sma_cross)")
    p.add_argument("--strategy-dir", type=Path, help="directory of your own strategies (default: $TRADER_STRATEGY_DIR)")
    p.add_argument("--space", help=_SPACE_HELP)
    p.add_argument("--constraint", action="append", default=[], metavar="EXPR",
                   help="e.g. 'fast < slow' (repeatable; added to the space's constraints)")
    p.add_argument("--params", type=json.loads, default={}, help="parameters held fixed, as JSON")
    p.add_argument("--objective", default="sharpe", choices=OBJECTIVES, help="maximised (default sharpe)")
    p.add_argument("--min-trades", type=int, default=10, help="fewer closed trades in a window: no score (default 10)")
    p.add_argument("--trials", type=int, default=50, help="trials per fold (default 50; a grid runs every point)")
    p.add_argument("--folds", type=int, default=3, help="walk-forward folds (default 3; 0 = tune on everything, no check)")
    p.add_argument("--sampler", default="tpe", choices=SAMPLERS, help="tpe (default), random, or grid (every point)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, help="processes (default: all cores)")
    p.add_argument("--study", help="study name: the same name resumes it (default <strategy>-<series>)")
    p.add_argument("--storage", help="database URL of the studies (default: the candles' database, schema optuna)")
    add_fill_args(p)
    add_output_args(p, "optimize-<study>-<UTC time>", "the plots")
    p.set_defaults(func=run_optimize_command)
    return p


def run_optimize_command(args: argparse.Namespace) -> int:
    from trader.backtest.optimize.run import OptimizeRequest, execute

    resolve_database_url(args, "optimize", needed=not args.storage)

    def request() -> OptimizeRequest:
        load_user_strategies(args)
        storage = args.storage or args.database_url
        if not storage:
            raise ValueError("no database for the studies: give --storage or --database-url, set DATABASE_URL, "
                             "or start `make run`")
        series = args.symbol or (args.csv.name.split(".")[0] if args.csv else "")
        study = args.study or f"{args.strategy}-{series}{'-' + args.interval if args.interval else ''}"
        return OptimizeRequest(out_dir=args.out or _default_out(study), storage=storage, study=study, strategy=args.strategy,
                               space=_space(args), params=args.params, objective=args.objective,
                               min_trades=args.min_trades, folds=args.folds, trials=args.trials, sampler=args.sampler,
                               seed=args.seed, workers=args.workers, model=fill_model(args), csv=args.csv,
                               database_url=args.database_url, symbol=args.symbol, interval=args.interval,
                               start=args.start, end=args.end, html=not args.no_html, png=not args.no_png)

    return run_reported("optimize", args, request, execute, print_verdict)


def _space(args: argparse.Namespace):
    if args.space is None and not args.constraint:
        return None
    if args.space is None:
        raise ValueError("--constraint needs --space (the parameters it relates)")
    from trader.backtest.optimize.space import parse_space

    space = parse_space(args.space).as_dict()
    if args.constraint:
        space["constraints"] = [*space.get("constraints", []), *args.constraint]
    return space


def print_verdict(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from trader.backtest.present import inline

    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"optimize {result['study']} ({result['objective']})", title_justify="left")
    for col in ("fold", "tuned on", "trials", "best params", "in sample", "out of sample"):
        table.add_column(col, justify="right" if col in ("fold", "trials", "in sample", "out of sample") else "left")
    for f in result["folds"]:
        table.add_row(str(f["fold"]), f"{f['train_start'][:16]} → {f['train_end'][:16]}", f"{f['scored']}/{f['trials']}",
                      inline(f.get("params")), _num(f.get("in_sample")), _num(f.get("out_of_sample")))
    console.print(table)
    console.print(Text(f"best parameters: {inline(result.get('best_params'))}"))
    if result.get("gap") is not None:
        console.print(Text(f"in sample {_num(result['in_sample_mean'])}, out of sample {_num(result['out_of_sample_mean'])}, "
                           f"gap {_num(result['gap'])}; walk-forward out-of-sample return {_num(result['oos_return_pct'])} %"))
    for w in result.get("warnings", []):
        console.print(Text(f"⚠ {w}", style="yellow"))
    console.print(Text(f"output: {result['out_dir']}"), soft_wrap=True)
    if result.get("report"):
        console.print(Text(f"report: {result['report']}"), soft_wrap=True)


def _num(value) -> str:
    return "–" if value is None else f"{value:,.3f}"


def _default_out(study: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return DEFAULT_REPORTS / f"optimize-{study.replace('/', '-')}-{stamp}"
