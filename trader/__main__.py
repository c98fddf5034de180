"""Composition root and CLI of the trader: ``python -m trader run|status|kill|resume|reconcile|backtest|...`` (``--help``).

Reads settings (the only place that does), builds the strategies, the broker (paper, or Binance through
python-binance for testnet/demo/live), the loop and the notification drainer (``trader.wiring``), reconciles with the exchange, then runs until
SIGINT/SIGTERM. The schema is owned by the pipeline's migrations (``sql/``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

import psycopg2

from klinepipe import FEATURES_CHANNEL, connection_file, logging_setup
from trader import account_records, sleeve_records
from trader.backtest.cli import add_backtest_parser
from trader.backtest.optimize.cli import add_optimize_parser
from trader.config import SettingsError, TraderSettings, load_settings
from trader.dependencies import Outages, classify_pg, wait_for_database
from trader.errors import EXIT_FAILED, EXIT_SETTINGS, EXIT_UNRECONCILED, AuthError, TraderError, exit_code
from trader.loop import Trader
from trader.run_loop import run_forever
from trader.sleeve import Sleeve
from trader.transaction import Transaction
from trader.metrics import LoopStats, serve_metrics
from trader.reconcile import reconcile, require_reconciled
from trader.status import render_status
from trader.strategy_cli import add_strategy_parsers
from trader.symbols import split_symbol
from trader.wiring import build_broker, build_drainer, build_risk, build_sleeves, build_user_stream, connector


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in OFFLINE:
        return args.func(args)  # reads files or market.candles, needs no trader settings
    logging_setup.configure("trader")  # UTC time and level on every line
    connection_file.fill_unset(("DATABASE_URL",), "trader", also_set_by={"DATABASE_URL": "TRADER_DATABASE_URL"})
    try:
        settings = load_settings(require_keys=args.command in NEEDS_KEYS, mode=args.mode,
                                 sleeves=getattr(args, "sleeves", None))
        wait_for_database(connector(settings), settings.startup_wait, settings.retry_max_delay)
        return COMMANDS[args.command](settings, args)
    except TraderError as exc:
        if isinstance(exc, AuthError):
            print(f"trader: BINANCE_API_KEY/BINANCE_API_SECRET refused by Binance: {exc}", file=sys.stderr)
        elif "DATABASE_URL: Field required" in str(exc):  # one line: what is missing, and both ways to give it
            print(f"trader: invalid setting DATABASE_URL: not set, and no running make-run stack ({connection_file.path()}):"
                  " start make run, or set DATABASE_URL=postgresql://user:pass@host:5432/db", file=sys.stderr)
        else:
            print(f"trader: {exc}", file=sys.stderr)
        return exit_code(exc)
    except psycopg2.Error as exc:  # the database went away during a one-shot command
        print(f"trader: {classify_pg(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("trader: interrupted", file=sys.stderr)
        return EXIT_FAILED


def banner(settings: TraderSettings, sleeves: list[Sleeve], account: str) -> str:
    return (f"trader: mode={settings.mode.upper()} account={account}\n"
            f"trader: sleeves={', '.join(s.shown() for s in sleeves)}\n"
            f"trader: limits max_symbol_notional={settings.max_symbol_notional} max_total_notional={settings.max_total_notional}"
            f" max_orders_per_minute={settings.max_orders_per_minute} max_daily_loss={settings.max_daily_loss:%}"
            f" max_drawdown={settings.max_drawdown:%} stale_intervals={settings.stale_intervals} order_type={settings.order_type}"
            f" fee_bps={settings.fee_bps}\n"
            f"trader: kill switch REDUCING={settings.kill_reducing} HALTED={settings.kill_halted}"
            f" recv_window={settings.recv_window} self_trade_prevention={settings.self_trade_prevention or 'exchange default'}")


def cmd_run(settings: TraderSettings, args) -> int:
    if (settings.mode == "live") != bool(args.live):
        print("trader: live trading needs BOTH TRADER_MODE=live and --live" if settings.mode == "live"
              else f"trader: --live given but TRADER_MODE={settings.mode}; refusing", file=sys.stderr)
        return EXIT_SETTINGS
    stopping: list[bool] = []  # SIGINT/SIGTERM from now on: finish what is under way, then stop
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    connect, sleeves = connector(settings), build_sleeves(settings)
    broker = build_broker(settings, connect)
    trader = Trader(connect, sleeves, broker, risk=build_risk(settings),
                    paper_balance=settings.paper_balance if settings.mode == "paper" else None)
    account = "paper (trading.balances)" if settings.mode == "paper" else broker.account_label()
    print(banner(settings, sleeves, account), flush=True)
    if settings.mode != "paper":
        diffs = _reconcile(trader, sleeves, accept=args.accept_differences)
        if diffs and not args.accept_differences and args.wait_for_acceptance:
            diffs = _await_acceptance(trader, sleeves, settings, len(diffs), stopping)
            if diffs is None:
                print("trader: stopped while waiting for the operator", flush=True)
                return 0
        require_reconciled(diffs, args.accept_differences)
    return _serve(trader, connect, settings, stopping)


ACCEPTANCE_CHECK_S = 5.0


def _await_acceptance(trader: Trader, sleeves: list[Sleeve], settings: TraderSettings, count: int, stopping: list[bool],
                      sleep=time.sleep):
    """Hold trading (the process stays up) until the operator accepts the differences from another shell; then
    reconcile again. ``None`` when stopped meanwhile. One line while waiting, not one per check."""
    with trader._transaction() as cur:
        cur.execute("SELECT now()")
        since = cur.fetchone()[0]
    print(f"trader: holding: {count} difference(s) between the exchange and the ledger (listed above); not trading until "
          "the operator accepts them with `python -m trader accept-reconciliation`", flush=True)
    while not stopping:
        sleep(ACCEPTANCE_CHECK_S)
        with trader._transaction() as cur:
            cur.execute("SELECT count(*) FROM trading.reconciliations WHERE mode = %s AND accepted_at > %s",
                        (settings.mode, since))
            accepted = cur.fetchone()[0]
        if accepted:
            diffs = _reconcile(trader, sleeves, accept=False)
            if not diffs:
                return diffs
            print(f"trader: holding: {len(diffs)} difference(s) remain after the acceptance", flush=True)
            with trader._transaction() as cur:
                cur.execute("SELECT now()")
                since = cur.fetchone()[0]
    return None


def _reconcile(trader: Trader, sleeves: list[Sleeve], accept: bool):
    assets = {a for s in sleeves for a in split_symbol(s.symbol)}
    diffs = reconcile(trader._transaction, trader.executor, sorted({s.symbol for s in sleeves}), assets, accept,
                      trader.protector)
    for d in diffs:
        print(f"trader: reconcile: {d.line()}", flush=True)
    print(f"trader: reconcile: {len(diffs)} difference(s)" + (" accepted" if diffs and accept else ""), flush=True)
    return diffs


def _serve(trader: Trader, connect, settings: TraderSettings, stopping: list[bool]) -> int:
    loop_stats = _start_metrics(connect, settings.mode, settings.metrics_port, str(settings.metrics_host))

    def listen():
        conn = connect()
        conn.autocommit = True
        conn.cursor().execute(f"LISTEN {FEATURES_CHANNEL}")
        return conn

    def emit(line: str) -> None:
        print(f"trader: {line}", flush=True)

    drainer = build_drainer(settings, connect)
    if drainer is not None:
        print(f"trader: notifications to {', '.join(c.name for c in drainer.channels)}", flush=True)
        drainer.start()
    stream = build_user_stream(settings, connect, emit)
    if stream is not None:
        print("trader: user data stream on (fills as they happen; REST stays the source of truth)", flush=True)
        loop_stats.user_stream = stream.start().stream
    elif settings.mode != "paper":
        print("trader: user data stream off (TRADER_USER_STREAM=false): fills from REST polling only", flush=True)
    try:
        run_forever(trader, listen, lambda: bool(stopping), settings.poll_interval, emit, loop_stats.observe_step,
                    Outages(_telling(trader, emit), loop_stats), settings.retry_max_delay)
    finally:
        trader.close()
        if stream is not None:
            stream.stop()
        if drainer is not None:
            drainer.stop()
    print("trader: stopped", flush=True)
    return 0


def _telling(trader: Trader, emit):
    """Outage lines printed and recorded as events (so the operator is told), except "postgres down": that one cannot be
    recorded, and trying could wait out a TCP timeout; "postgres back after ..." is."""
    def tell(line: str) -> None:
        emit(line)
        if not line.startswith("postgres down"):
            trader.record_outage(line)

    return tell


def _start_metrics(connect, mode: str, port: int, host: str = "127.0.0.1") -> LoopStats:
    """``/metrics`` on ``TRADER_METRICS_HOST``:``TRADER_METRICS_PORT`` (default 127.0.0.1:9102; port 0 = off).
    A busy port is reported, not fatal."""
    stats = LoopStats()
    if port:
        try:
            serve_metrics(connect, mode, port, stats, host)
            print(f"trader: metrics on http://{f'[{host}]' if ':' in host else host}:{port}/metrics", flush=True)
        except OSError as exc:
            print(f"trader: metrics port {port} unavailable ({exc.strerror}); running without /metrics", flush=True)
    return stats


def cmd_reconcile(settings: TraderSettings, args) -> int:
    if settings.mode == "paper":
        print("trader: paper mode: the ledger is the account, nothing to reconcile")
        return 0
    connect, sleeves = connector(settings), build_sleeves(settings)
    trader = Trader(connect, sleeves, build_broker(settings, connect), risk=build_risk(settings))
    diffs = _reconcile(trader, sleeves, accept=args.accept)
    return EXIT_UNRECONCILED if diffs and not args.accept else 0


def cmd_accept_reconciliation(settings: TraderSettings, args) -> int:
    args.accept = True
    return cmd_reconcile(settings, args)


def cmd_status(settings: TraderSettings, args) -> int:
    with Transaction(connector(settings)()) as cur:
        print(render_status(cur, settings.mode, split_symbol(settings.sleeve_specs()[0].symbol)[1]))
    return 0


def cmd_kill(settings: TraderSettings, args) -> int:
    state = "REDUCING" if args.reducing else "HALTED"
    with Transaction(connector(settings)()) as cur:
        account_records.set_kill_state(cur, settings.mode, state, args.reason, "operator")
    print(f"trader: kill switch {state} ({settings.mode})")
    return 0


def cmd_resume(settings: TraderSettings, args) -> int:
    with Transaction(connector(settings)()) as cur:
        if args.sleeve:
            if not sleeve_records.halt_sleeve(cur, settings.mode, args.sleeve, None):
                raise SettingsError(f"--sleeve: no sleeve {args.sleeve!r} in {settings.mode} mode")
            sleeve_records.record_event(cur, settings.mode, "operator", f"sleeve resumed: {args.reason}", args.sleeve)
            print(f"trader: sleeve {args.sleeve} resumed")
        else:
            account_records.set_kill_state(cur, settings.mode, "ACTIVE", args.reason, "operator")
            print(f"trader: kill switch ACTIVE ({settings.mode})")
    return 0


OFFLINE = ("backtest", "optimize", "new-strategy", "check-strategy")
NEEDS_KEYS = ("run", "reconcile", "accept-reconciliation")
COMMANDS = {"run": cmd_run, "status": cmd_status, "kill": cmd_kill, "resume": cmd_resume, "reconcile": cmd_reconcile,
            "accept-reconciliation": cmd_accept_reconciliation}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trader",
        description="Features -> strategy -> risk -> orders (paper, Binance testnet, Demo Mode or live). Settings come from "
                    "TRADER_* environment variables (TRADER_MODE, TRADER_SLEEVES, ...), DATABASE_URL and, for testnet/live, "
                    "BINANCE_API_KEY/BINANCE_API_SECRET or TRADER_BINANCE_KEY_FILE (testnet/demo/live).")
    p.add_argument("--mode", choices=["paper", "testnet", "demo", "live"], help="overrides TRADER_MODE")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="reconcile with the exchange, then trade on every new closed candle until stopped")
    run.add_argument("--sleeves", help="comma-separated SYMBOL:interval:strategy[:allocation], e.g. BTCUSDT:1m:sma_cross:1000")
    run.add_argument("--live", action="store_true", help="required (with TRADER_MODE=live) to trade real money")
    run.add_argument("--accept-differences", action="store_true",
                     help="start even though the exchange and the ledger disagree, adopting the exchange's balances")
    run.add_argument("--wait-for-acceptance", action="store_true",
                     help="on a difference, stay up without trading until `accept-reconciliation` is run (for supervisors, "
                          "which would otherwise restart a trader that exits 3)")
    sub.add_parser("status", help="positions, balances, P&L, kill-switch state, open orders, last decision per sleeve")
    kill = sub.add_parser("kill", help="trip the kill switch by hand: HALTED (no orders) or --reducing (exits only)")
    kill.add_argument("--reducing", action="store_true", help="allow exits, block entries")
    kill.add_argument("--reason", default="operator", help="recorded with the change")
    resume = sub.add_parser("resume", help="reset the kill switch to ACTIVE (or un-halt one sleeve with --sleeve)")
    resume.add_argument("--sleeve", help="SYMBOL:interval:strategy halted by a strategy error")
    resume.add_argument("--reason", default="operator", help="recorded with the change")
    rec = sub.add_parser("reconcile", help="compare exchange open orders, fills and balances with the ledger and show it")
    rec.add_argument("--accept", action="store_true", help="accept the differences and adopt the exchange's balances")
    sub.add_parser("accept-reconciliation",
                   help="accept the current differences (recorded in trading.events): the ledger adopts the exchange's balances,"
                        " caps positions at what the account holds, and the next `run` starts")
    add_backtest_parser(sub)
    add_strategy_parsers(sub)
    add_optimize_parser(sub)
    return p


if __name__ == "__main__":
    sys.exit(main())
