"""History loads, gap fills and file imports from a terminal, with progress bars: the ``backfill_klines`` and
``import_kline_files`` DAGs' work without Airflow.

    .venv/bin/python scripts/backfill.py history --symbols BTCUSDT,ETHUSDT --interval 1h --start 2024-01-01 --end 2024-02-01
    .venv/bin/python scripts/backfill.py gaps --days 7          # missing candles between stored ones, every series
    .venv/bin/python scripts/backfill.py files ~/Downloads/BTCUSDT-1m-2024-0*.zip   # data.binance.vision files

Writes to ``$DATABASE_URL`` (migrations applied first); Binance REST at ``$BINANCE_REST_URL`` (default
https://api.binance.com). Same code as the DAGs (``klinepipe.backfill``): re-running is always safe; an
unreachable Binance fails within seconds, naming the cause (exit code 1).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "plugins")) if p not in sys.path]

from klinepipe.airflow_conn import binance_client  # noqa: E402
from klinepipe.backfill import fill_gaps, import_files, load_history  # noqa: E402
from klinepipe.binance.times import parse_utc  # noqa: E402
from klinepipe.db import apply_migrations, make_engine  # noqa: E402
from klinepipe.errors import KlinepipeConfigError, KlinepipeError  # noqa: E402
from klinepipe.settings import load_settings  # noqa: E402
from trader.backtest.cli import ProgressBars  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/backfill.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--no-progress", action="store_true", help="no progress bars (drawn only on a terminal anyway)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    h = sub.add_parser("history", help="every closed candle of SYMBOLS x INTERVAL in [START, END)")
    h.add_argument("--symbols", required=True, help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    h.add_argument("--interval", required=True, help="e.g. 1m, 1h, 1d")
    h.add_argument("--start", required=True, type=parse_utc, help="ISO time (UTC), e.g. 2024-01-01")
    h.add_argument("--end", type=parse_utc, default=None, help="ISO time (UTC); default now")
    g = sub.add_parser("gaps", help="fetch the closed candles missing between stored ones, every stored series")
    g.add_argument("--days", type=float, default=7.0, help="look back this many days (default 7)")
    f = sub.add_parser("files", help="import data.binance.vision kline zips/CSVs (SYMBOL-INTERVAL-*.zip)")
    f.add_argument("paths", nargs="+", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except KlinepipeConfigError as exc:
        print(f"backfill: invalid setting {exc}", file=sys.stderr)
        return 2
    if not settings.database_url:
        print("backfill: set DATABASE_URL (postgresql://user:pass@host:5432/db)", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    try:
        apply_migrations(engine)
        with ProgressBars(enabled=not args.no_progress and sys.stderr.isatty()) as progress:
            if args.command == "history":
                end = args.end or datetime.now(timezone.utc)
                symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
                changed = load_history(engine, binance_client(settings), symbols, args.interval, args.start, end, progress=progress)
                lines = [f"backfill: {s} {args.interval}: {n} candles written" for s, n in changed.items()]
            elif args.command == "gaps":
                until = datetime.now(timezone.utc)
                report = fill_gaps(engine, binance_client(settings), until - timedelta(days=args.days), until, progress=progress)
                lines = [f"backfill: {r['symbol']} {r['interval']} gap of {r['missing']}: {r['filled']} filled" for r in report]
                lines.append(f"backfill: {len(report)} gap(s) in the last {args.days:g} days")
            else:
                changed = import_files(engine, args.paths, progress=progress)
                lines = [f"backfill: {p}: {n} candles written" for p, n in changed.items()]
    except KlinepipeError as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
