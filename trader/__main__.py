"""Composition root of the trader: ``python -m trader run``.

Reads settings, applies nothing to the schema (the pipeline's migrations own it), builds the
strategies, the paper broker and the loop, then runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import psycopg2

from trader.brokers.paper import PaperBroker
from trader.config import SettingsError, TraderSettings, load_settings
from trader.loop import Sleeve, Trader, run_forever
from trader.strategies import build_strategy


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s trader %(levelname)s %(message)s")
    try:
        settings = load_settings(mode=args.mode, sleeves=args.sleeves)
        sleeves = build_sleeves(settings)
    except (SettingsError, ValueError) as exc:
        print(f"trader: {exc}", file=sys.stderr)
        return 2
    dsn = _dsn(settings.database_url)
    broker = PaperBroker(fee_bps=settings.fee_bps, slippage_bps=settings.slippage_bps)
    trader = Trader(lambda: psycopg2.connect(dsn), sleeves, broker, order_quote=settings.order_quote,
                    qty_step=settings.qty_step, paper_balance=settings.paper_balance)
    print(f"trader: mode={settings.mode} sleeves={', '.join(s.name for s in sleeves)} "
          f"order_quote={settings.order_quote} fee_bps={settings.fee_bps}", flush=True)
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    listen = psycopg2.connect(dsn)
    listen.autocommit = True
    listen.cursor().execute("LISTEN klinepipe_features")
    try:
        run_forever(trader, listen, lambda: bool(stopping), settings.poll_interval, lambda line: print(f"trader: {line}", flush=True))
    finally:
        listen.close()
    print("trader: stopped", flush=True)
    return 0


def build_sleeves(settings: TraderSettings) -> list[Sleeve]:
    sleeves = []
    for spec in settings.sleeves:
        symbol, interval, name = spec.split(":")
        strategy = build_strategy(name, **settings.strategy_params.get(name, {}))
        sleeves.append(Sleeve(spec, symbol.upper(), interval, strategy))
    return sleeves


def _dsn(url: str) -> str:
    """A libpq DSN from a SQLAlchemy-style URL (drops a ``+driver`` suffix)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trader", description="Features -> strategy -> orders (paper).")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the trading loop")
    run.add_argument("--mode", choices=["paper", "testnet", "live"])
    run.add_argument("--sleeves", help="comma-separated SYMBOL:interval:strategy, e.g. BTCUSDT:1m:sma_cross")
    return p


if __name__ == "__main__":
    sys.exit(main())
