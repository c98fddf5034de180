"""``python -m trader backtest`` (and ``python -m trader.backtest``): arguments -> ``BacktestRequest`` -> ``execute``.

Wire into another parser with ``add_backtest_parser(subparsers)``; the sub-command's handler is set
as ``func``, so the caller runs ``args.func(args)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from trader.backtest.candles import parse_time
from trader.backtest.engine import FillModel
from trader.backtest.present import render_console
from trader.backtest.sweep import METRICS
from trader.strategies import REGISTRY

DEFAULT_REPORTS = Path(".data") / "reports"


def add_backtest_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("backtest", help="backtest a strategy over a kline file or stored candles",
                              description="Backtest a live strategy over history with the paper broker's fill model.")
    add_candle_args(p)
    p.add_argument("--strategy", default="sma_cross", help=f"one of: {', '.join(sorted(REGISTRY))} (default sma_cross)")
    p.add_argument("--strategy-dir", type=Path, help="directory of your own strategies (default: $TRADER_STRATEGY_DIR)")
    p.add_argument("--params", type=json.loads, default={}, help='strategy params as JSON, e.g. \'{"fast": 10, "slow": 30}\'')
    add_fill_args(p)
    sweep = p.add_argument_group("sweeps")
    sweep.add_argument("--sweep", type=json.loads, help='grid as JSON, e.g. \'{"fast": [5, 10, 20], "slow": [30, 50]}\'')
    sweep.add_argument("--metric", default="sharpe", choices=METRICS, help="sort the sweep table by this, highest first (default sharpe)")
    sweep.add_argument("--walk-forward", type=int, default=0, metavar="FOLDS", help="with --sweep: out-of-sample folds")
    sweep.add_argument("--workers", type=int, help="processes for the sweep (default: all cores)")
    add_output_args(p, "<strategy>-<series>-<UTC time>", "equity.png")
    p.set_defaults(func=run_backtest_command)
    return p


def add_output_args(p: argparse.ArgumentParser, default_dir: str, images: str) -> None:
    """``--out``, ``--no-html``, ``--no-png``, ``--no-progress`` (shared by ``backtest`` and ``optimize``)."""
    p.add_argument("--out", type=Path, help=f"output directory (default .data/reports/{default_dir})")
    p.add_argument("--no-html", action="store_true", help="skip report.html")
    p.add_argument("--no-png", action="store_true", help=f"skip {images}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (they are drawn only on a terminal anyway)")


def add_candle_args(p: argparse.ArgumentParser) -> None:
    """The candle source: a kline file, or stored candles of a series (shared by ``backtest`` and ``optimize``)."""
    src = p.add_argument_group("candles (a file, or PostgreSQL market.candles)")
    src.add_argument("--csv", type=Path, help="Binance 12-column kline CSV (.csv, .csv.gz or .zip; ms or µs times)")
    src.add_argument("--symbol", default="", help="e.g. BTCUSDT (taken from the file name for a CSV)")
    src.add_argument("--interval", default="", help="e.g. 1m (taken from the file name for a CSV)")
    src.add_argument("--start", type=parse_time, help="first open time, ISO (UTC), e.g. 2024-03-01")
    src.add_argument("--end", type=parse_time, help="open times before this, ISO (UTC)")
    src.add_argument("--database-url", help="default: $DATABASE_URL")


def add_fill_args(p: argparse.ArgumentParser) -> None:
    """The fill model's flags (shared by ``backtest`` and ``optimize``); ``fill_model(args)`` builds it."""
    fills = p.add_argument_group("fill model")
    fills.add_argument("--fee-bps", type=float, default=10.0, help="fee per side in basis points (default 10)")
    fills.add_argument("--slippage-bps", type=float, default=0.0)
    fills.add_argument("--size", type=float, default=1.0, help="fraction of equity per entry (default 1)")
    fills.add_argument("--cash", type=float, default=10_000.0, help="starting equity in the quote asset")
    fills.add_argument("--order-quote", type=float, help="spend this quote amount per entry instead of --size")
    fills.add_argument("--qty-step", type=float, help="round quantities down to this step (LOT_SIZE)")
    fills.add_argument("--size-at", choices=["fill", "signal"], default="fill",
                       help="size with the fill price, or with the decision candle's close as the live trader does")
    fills.add_argument("--allow-short", action="store_true", help="SELL when flat opens a short (default: long-only spot)")
    stops = p.add_argument_group("protection (the live trader's stop model, trader.backtest.stops)")
    stops.add_argument("--stop-loss", help="stop below the entry fill, e.g. 2%% or 2atr (x atr_14 of the entry candle)")
    stops.add_argument("--take-profit", help="take-profit above the entry fill (with --stop-loss: an OCO), e.g. 4%%")
    stops.add_argument("--trailing-stop", help="trailing stop below the highest price since the entry, e.g. 1.5%%")
    stops.add_argument("--tick", type=float, default=0.0, help="round stop prices to this tick as the trader does (e.g. 0.01)")
    stops.add_argument("--sleeves-file", type=Path, help="take the protection of a sleeve of this sleeves file (TOML)")
    stops.add_argument("--sleeve", help="with --sleeves-file: the sleeve's name (needed when the file has several)")


def fill_model(args: argparse.Namespace) -> FillModel:
    return FillModel(fee_bps=args.fee_bps, slippage_bps=args.slippage_bps, size=args.size, cash=args.cash,
                     allow_short=args.allow_short, order_quote=args.order_quote, qty_step=args.qty_step, size_at=args.size_at,
                     stops=stop_model(args))


def stop_model(args: argparse.Namespace):
    """The ``StopModel`` of ``--stop-loss/--take-profit/--trailing-stop`` or of a sleeve of ``--sleeves-file`` (``None``:
    none); ``ValueError`` naming the setting, with the live trader's checks (``trader.protection.check_settings``)."""
    from trader.backtest.stops import StopModel
    from trader.protection import Distance, ProtectionSettings, check_settings

    flags = {k: getattr(args, k, None) for k in ("stop_loss", "take_profit", "trailing_stop")}
    sleeves_file = getattr(args, "sleeves_file", None)
    if sleeves_file is not None:
        if any(flags.values()):
            raise ValueError("give the protection as flags or with --sleeves-file, not both")
        p = _sleeve_protection(sleeves_file, getattr(args, "sleeve", None))
    else:
        try:
            p = ProtectionSettings(**{k: Distance.parse(v) if v else None for k, v in flags.items()})
        except ValueError as exc:
            raise ValueError(f"--{next(k for k, v in flags.items() if v and _bad(v)).replace('_', '-')}: {exc}") from None
        check_settings(p)
    if p is None or not p.active:
        return None
    if p.stop_limit_bps is not None:
        raise ValueError("stop_limit_bps: the backtest models the stop as a STOP_LOSS (at the stop, or the gap open), not "
                         "a STOP_LOSS_LIMIT")
    if getattr(args, "allow_short", False):
        raise ValueError("protection is for long-only spot: drop --allow-short")
    def of(d, unit: str):
        return float(d.value) if d is not None and d.unit == unit else None

    return StopModel(stop_pct=of(p.stop_loss, "%"), take_profit_pct=of(p.take_profit, "%"), trailing_pct=of(p.trailing_stop, "%"),
                     tick=getattr(args, "tick", 0.0) or 0.0, stop_atr=of(p.stop_loss, "atr"),
                     take_profit_atr=of(p.take_profit, "atr"))


def _bad(text: str) -> bool:
    from trader.protection import Distance

    try:
        Distance.parse(text)
    except ValueError:
        return True
    return False


def _sleeve_protection(path: Path, name: str | None):
    from trader.sleeves_file import read_sleeves_file

    specs = read_sleeves_file(path)
    if name is None and len(specs) > 1:
        raise ValueError(f"{path}: {len(specs)} sleeves; choose one with --sleeve ({', '.join(s.name for s in specs)})")
    chosen = [s for s in specs if name is None or s.name == name]
    if not chosen:
        raise ValueError(f"{path}: no sleeve named {name!r} (there are: {', '.join(s.name for s in specs)})")
    return chosen[0].protection


def resolve_database_url(args: argparse.Namespace, command: str, needed: bool = False) -> None:
    """``--database-url``, else ``$DATABASE_URL``, else (for stored candles, or when ``needed``) the running make-run stack's."""
    if not args.database_url:
        from trader.config import BacktestSettings

        if needed or not args.csv:
            from klinepipe import connection_file

            connection_file.fill_unset(("DATABASE_URL",), command)
        args.database_url = BacktestSettings().database_url


def load_user_strategies(args: argparse.Namespace) -> None:
    """Register the strategies of ``--strategy-dir`` (else ``$TRADER_STRATEGY_DIR``) beside the bundled ones."""
    from trader.backtest.user_strategies import load_user_strategies as load

    load(getattr(args, "strategy_dir", None))


def run_backtest_command(args: argparse.Namespace) -> int:
    from trader.backtest.service import BacktestRequest, execute

    resolve_database_url(args, "backtest")  # stored candles: the running make-run stack's database

    def request() -> BacktestRequest:
        load_user_strategies(args)
        req = BacktestRequest(out_dir=args.out or _default_out(args), strategy=args.strategy, params=args.params,
                              model=fill_model(args), csv=args.csv, database_url=args.database_url, symbol=args.symbol,
                              interval=args.interval, start=args.start, end=args.end, sweep=args.sweep,
                              walk_forward=args.walk_forward, metric=args.metric, workers=args.workers,
                              html=not args.no_html, png=not args.no_png)
        if req.walk_forward and not req.sweep:
            raise ValueError("--walk-forward needs --sweep (the grid to choose from in each fold)")
        return req

    return run_reported("backtest", args, request, execute, print_summary)


def run_reported(command: str, args: argparse.Namespace, request, execute, present) -> int:
    """Build the request, run it with progress bars, print what it found (0); bad input: one line on stderr (2)."""
    try:
        req = request()
        with ProgressBars(enabled=not getattr(args, "no_progress", False) and sys.stderr.isatty()) as progress:
            result = execute(req, progress)
    except (ValueError, LookupError, FileNotFoundError) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    present(result)
    return 0


class ProgressBars:
    """Rich progress bars on stderr, one line per step (load candles, features, sweep, walk-forward, backtest,
    report); a no-op when disabled. Called as ``progress(step, done, total)``."""

    def __init__(self, enabled: bool) -> None:
        self._enabled, self._bars, self._tasks = enabled, None, {}

    def __enter__(self) -> "ProgressBars":
        if self._enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._bars = Progress(SpinnerColumn(), TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=Console(stderr=True))
            self._bars.start()
        return self

    def __call__(self, step: str, done: int, total: int) -> None:
        if self._bars is None:
            return
        if step not in self._tasks:
            self._tasks[step] = self._bars.add_task(step, total=total)
        self._bars.update(self._tasks[step], completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self._bars is not None:
            self._bars.stop()


def print_summary(result: dict) -> None:
    """The summary table on stdout (colours only on a terminal)."""
    from rich.console import Console

    render_console(result, Console(width=None if sys.stdout.isatty() else 120))


def _default_out(args: argparse.Namespace) -> Path:
    series = args.symbol or (args.csv.name.split(".")[0] if args.csv else "")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return DEFAULT_REPORTS / f"{args.strategy}-{series}{'-' + args.interval if args.interval else ''}-{stamp}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trader.backtest")
    sub = parser.add_subparsers(dest="command")
    add_backtest_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "backtest":
        argv = ["backtest", *argv]  # ``python -m trader.backtest --csv ...`` works too
    args = parser.parse_args(argv)
    return args.func(args)
