"""``python -m tests.fake_binance --port 8080``: the fake Binance REST API and WebSocket API by itself.

Seeds BTCUSDT (and any ``--seed`` file named ``SYMBOL-INTERVAL.csv[.gz]``) from the bundled real klines,
prints the API key and secret of its one account (the public test vector of the Binance docs) and serves
until interrupted. With ``--ws-port`` it also starts ``tests.fake_binance.ws.serve_streams`` when present.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import importlib
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from tests.fake_binance.app import build_app
from tests.fake_binance.state import FakeState

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def read_kline_csv(path: Path) -> list[list[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        return [r for r in csv.reader(f) if r and r[0].isdigit()]


def seed(state: FakeState, files: list[Path], quote_balance: str) -> None:
    for path in files:
        symbol, interval = path.name.split(".")[0].split("-")[:2]
        if symbol not in state.market.symbols:
            state.add_symbol(symbol, symbol[:-4], symbol[-4:])  # bundled files are *USDT
        state.market.seed_klines(symbol, interval, read_kline_csv(path))
    state.engine.deposit("USDT", Decimal(quote_balance))


async def serve(args) -> None:
    state = FakeState(weight_limit=args.weight_limit)
    seed(state, args.seed or [SAMPLE / "BTCUSDT-1m.csv.gz"], args.balance)
    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    print(f"fake binance REST on http://{args.host}:{args.port}/api  key={state.api_key} secret={state.api_secret}", flush=True)
    print(f"fake binance WebSocket API (user data stream) on ws://{args.host}:{args.port}/ws-api/v3", flush=True)
    tasks = []
    if args.ws_port:
        try:
            ws = importlib.import_module("tests.fake_binance.ws")
            tasks.append(asyncio.ensure_future(ws.serve_streams(args.host, args.ws_port)))
            print(f"fake binance streams on ws://{args.host}:{args.ws_port}/", flush=True)
        except (ImportError, AttributeError) as exc:
            print(f"no websocket streams: {exc}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for t in tasks:
            t.cancel()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.fake_binance", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--ws-port", type=int, default=0, help="also serve market streams here (needs tests/fake_binance/ws.py)")
    p.add_argument("--seed", type=Path, action="append", help="kline CSV named SYMBOL-INTERVAL.csv[.gz]; repeatable")
    p.add_argument("--weight-limit", type=int, default=6000, help="request weight per minute before 429")
    p.add_argument("--balance", default="10000", help="starting USDT balance of the account")
    args = p.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
