"""The trader's main loop: per sleeve and new closed candle — load, decide, check risk, size, record, submit.

``Trader.step()`` is the whole process on one screen:

1. ``settle``: pending orders go to the venue, open ones are refreshed (paper: filled at the next open).
2. for each active sleeve, for each candle not decided yet, in ONE transaction holding the sleeve's lock:
   ``decide`` (strategy via a guard) -> ``mark_equity`` + kill switch -> ``size`` (exchange filters,
   balance) -> ``risk`` rules -> record signal, order intent (PENDING_SUBMIT), events, progress;
   then ``settle`` that sleeve. A crash between any two steps leaves the ledger consistent.
A strategy that raises halts its own sleeve (persisted, recorded); the others go on.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg2

from klinepipe.binance.intervals import interval_ms
from trader import ledger
from trader.brokers.base import Broker
from trader.dependencies import Backoff, Outages, pg_reason
from trader.errors import FatalError, InsufficientBalance, RetryableError, StrategyError
from trader.execution import Executor
from trader.filters import check_balance, is_dust, prepare_order
from trader.orders import OrderIntent
from trader.risk import RiskBlock, RiskContext, first_block
from trader.risk.killswitch import KillLimits, KillState, KillSwitchRule, evaluate
from trader.strategies.base import Action, Strategy, decide_safely
from trader.symbols import split_symbol

log = logging.getLogger(__name__)
_BPS = Decimal(10_000)


@dataclass
class Sleeve:
    name: str  # SYMBOL:interval:strategy
    symbol: str
    interval: str
    strategy: Strategy
    allocation: Decimal = Decimal("1000")  # quote spent per entry
    halted: str | None = None


@dataclass(frozen=True)
class RiskConfig:
    rules: tuple = ()  # exposure, order rate, staleness rules (trader.risk.*)
    kill: KillLimits = KillLimits()
    staleness_basis: str = "close_time"  # or "ingested_at" (replays: when the pipeline stored the candle)
    order_type: str = "MARKET"  # entries and exits: MARKET | LIMIT
    limit_tif: str = "GTC"
    limit_offset_bps: Decimal = Decimal(0)


@dataclass(frozen=True)
class Decision:
    sleeve: str
    open_time: datetime
    action: str
    reason: str
    quantity: Decimal | None = None
    price: Decimal | None = None

    order_type: str = "MARKET"

    def line(self) -> str:
        """The decision, as ordered: a market order's price is not known yet (it fills at the next open), so the
        line names the signal close as what it is; a LIMIT order shows its limit."""
        if self.quantity is None:
            trade = ""
        elif self.order_type == "LIMIT":
            trade = f" {self.quantity} ordered (LIMIT {self.price})"
        else:
            trade = f" {self.quantity} ordered ({self.order_type}, signal close {self.price})"
        return f"{self.open_time:%Y-%m-%d %H:%M} {self.sleeve} {self.action}{trade} {self.reason}".rstrip()


@dataclass(frozen=True)
class Filled:
    """A fill the venue reported and the ledger stored: the price the sleeve actually traded at."""

    sleeve: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    filled_at: datetime
    signal_open_time: datetime

    def line(self) -> str:
        return (f"{self.filled_at:%Y-%m-%d %H:%M} {self.sleeve} {self.side} {self.quantity} filled @ {self.price}"
                f" (fee {_plain(self.fee)} {self.fee_asset}; signal {self.signal_open_time:%Y-%m-%d %H:%M})")


def _plain(x: Decimal, places: int = 8) -> str:
    """A decimal for a console line: at most ``places`` decimals, no trailing zeros, never exponent notation."""
    text = f"{x.quantize(Decimal(1).scaleb(-places)):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class Trader:
    def __init__(self, connect: Callable, sleeves: list[Sleeve], broker: Broker, *, risk: RiskConfig = RiskConfig(),
                 paper_balance: Decimal | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._connect, self.sleeves, self.broker, self.risk = connect, sleeves, broker, risk
        self._conn = None
        self.mode, self._clock = broker.mode, clock
        self.quote = split_symbol(sleeves[0].symbol)[1]
        self.executor = Executor(self._transaction, broker, sleep)
        self.broker_error: str | None = None  # the newest retryable broker error of the current step
        self.executor.on_retryable = self._broker_failed
        self._rules = (KillSwitchRule(), *risk.rules)
        with self._transaction() as cur:
            for s in sleeves:
                ledger.ensure_sleeve(cur, self.mode, s.name, s.symbol, s.interval, s.strategy.name, s.allocation)
                s.halted = s.halted or ledger.halted_reason(cur, self.mode, s.name)
                if paper_balance is not None:
                    ledger.seed_balance(cur, self.mode, split_symbol(s.symbol)[1], paper_balance)

    def step(self) -> list[Decision | Filled]:
        """Decide every new candle of every active sleeve; return the BUY/SELL orders recorded and the fills
        stored, in the order they happened (the console prints one line each)."""
        self.broker_error = None
        self.executor.settle()
        trades: list[Decision | Filled] = self._fills()
        if self.broker_error is not None:
            return trades  # the venue is away: decide nothing that could not go out (decided once it is back)
        for sleeve in self.sleeves:
            if sleeve.halted:
                continue
            try:
                trades += self._run_sleeve(sleeve)
            except RetryableError as err:  # e.g. exchangeInfo unreachable: the candle is decided on the next step
                self._broker_failed(err)
                log.debug("sleeve %s: %s; retrying on the next step", sleeve.name, err)
                with self._transaction() as cur:
                    ledger.record_event(cur, self.mode, "retry", str(err), sleeve.name)
        return trades + self._fills()

    def _fills(self) -> list[Filled]:
        """The fills the executor stored since the last call."""
        stored, self.executor.stored_fills[:] = list(self.executor.stored_fills), []
        return [Filled(i.sleeve, i.side, f.quantity, f.price, f.fee, f.fee_asset,
                       ledger.from_ms(f.filled_at_ms or i.signal_open_time_ms), ledger.from_ms(i.signal_open_time_ms))
                for i, f in stored]

    def _run_sleeve(self, sleeve: Sleeve) -> list[Decision | Filled]:
        with self._transaction() as cur:
            last = ledger.lock_sleeve(cur, self.mode, sleeve.name)
            frame = ledger.load_new_features(cur, sleeve.symbol, sleeve.interval, last, max(sleeve.strategy.warmup - 1, 0))
        first_new = 0 if last is None else int((frame["open_time"] <= last).sum())
        trades = []
        for i in range(first_new, len(frame)):
            window = frame.iloc[max(0, i - sleeve.strategy.warmup + 1): i + 1]
            try:
                with self._transaction() as cur:
                    decision = self._decide_bar(cur, sleeve, window)
            except StrategyError as exc:
                self._halt(sleeve, window["open_time"].iloc[-1], str(exc))
                break
            if decision is not None and decision.quantity is not None:
                trades.append(decision)
            self.executor.settle(sleeve.name)
            trades += self._fills()
            if self.broker_error is not None:
                break  # the order waits for the venue; the next candles are decided after it went out
        return trades

    def _decide_bar(self, cur, sleeve: Sleeve, window) -> Decision | None:
        bar = window.iloc[-1]
        open_time, close = bar["open_time"], Decimal(bar["close"])
        last = ledger.lock_sleeve(cur, self.mode, sleeve.name)
        if last is not None and open_time <= last:
            return None  # another trader decided it meanwhile
        signal = decide_safely(sleeve.strategy, window)
        kill = self._update_kill_switch(cur, open_time)
        intent, reason = self._intent(cur, sleeve, signal.action, open_time, close, signal.reason)
        block = self._check_risk(cur, sleeve, intent, close, kill, open_time) if intent is not None else None
        if block is not None:
            intent, reason = None, f"{reason}; blocked by {block.rule}: {block.reason}"
        ledger.record_signal(cur, self.mode, sleeve.name, sleeve.symbol, sleeve.interval, open_time, sleeve.strategy.name,
                             signal.action.value, reason)
        ledger.advance_sleeve(cur, self.mode, sleeve.name, open_time)
        if intent is None or not ledger.insert_order(cur, intent, self.mode, close):
            return Decision(sleeve.name, open_time, signal.action.value, reason)
        return Decision(sleeve.name, open_time, signal.action.value, reason, intent.quantity, intent.price or close,
                        intent.type)

    def _intent(self, cur, sleeve: Sleeve, action: Action, open_time: datetime, close: Decimal, reason: str):
        """The order this signal asks for, sized and filtered, or (None, why not)."""
        if action is Action.HOLD:
            return None, reason
        if ledger.open_orders(cur, self.mode, sleeve.name):
            return None, f"{reason}; an order of this sleeve is still open"
        held = ledger.position(cur, self.mode, sleeve.name)
        base, quote = split_symbol(sleeve.symbol)
        rules, fee = self.broker.rules(sleeve.symbol), self.broker.fee_bps()
        long = held > 0 and not is_dust(rules, held, close)
        if action is Action.BUY and long or action is Action.SELL and not long:
            return None, f"{reason}; {'already long' if long else 'nothing to sell'}"
        free_quote = ledger.balance(cur, self.mode, quote)
        price = self._limit_price(action, close)
        raw_qty = min(sleeve.allocation, free_quote / (1 + fee / _BPS)) / (price or close) if action is Action.BUY else held
        try:
            if action is Action.BUY and free_quote <= 0:
                raise InsufficientBalance(f"insufficient balance: no free {quote}")
            prepared = prepare_order(rules, action.value, self.risk.order_type, raw_qty, close, price)
            check_balance(action.value, prepared.quantity, prepared.price or close, free_quote,
                          ledger.balance(cur, self.mode, base), fee, base, quote)
        except FatalError as err:
            ledger.record_event(cur, self.mode, "risk_block", str(err), sleeve.name, open_time, "exchange_filter")
            return None, f"{reason}; blocked by exchange_filter: {err}"
        tif = self.risk.limit_tif if self.risk.order_type == "LIMIT" else None
        return OrderIntent(sleeve.name, sleeve.symbol, action.value, prepared.quantity, ledger.to_ms(open_time),
                           self.risk.order_type, prepared.price, None, tif, "", sleeve.interval, self.mode), reason

    def _limit_price(self, action: Action, close: Decimal) -> Decimal | None:
        if self.risk.order_type != "LIMIT":
            return None
        sign = -1 if action is Action.BUY else 1
        return close * (1 + sign * self.risk.limit_offset_bps / _BPS)

    def _check_risk(self, cur, sleeve: Sleeve, intent: OrderIntent, close: Decimal, kill: KillState, open_time) -> RiskBlock | None:
        now_ms = int(self._clock() * 1000)
        exposure = ledger.exposures(cur, self.mode, open_time)
        ctx = RiskContext(
            sleeve.name, sleeve.symbol, intent.side, intent.side == "BUY", intent.quantity * close,
            exposure.get(sleeve.symbol, Decimal(0)), sum(exposure.values(), Decimal(0)), now_ms,
            ledger.recent_order_times(cur, self.mode, ledger.from_ms(now_ms - 3_600_000)),
            self._newest_data_ms(cur, sleeve), interval_ms(sleeve.interval), kill)
        block = first_block(list(self._rules), ctx)
        if block is None:
            return None
        ledger.record_event(cur, self.mode, "risk_block", block.reason, sleeve.name, open_time, block.rule)
        return block

    def _newest_data_ms(self, cur, sleeve: Sleeve) -> int | None:
        newest = ledger.newest_candle(cur, sleeve.symbol, sleeve.interval)
        if newest is None:
            return None
        return ledger.to_ms(newest[1] if self.risk.staleness_basis == "ingested_at" else newest[0])

    def _update_kill_switch(self, cur, at: datetime) -> KillState:
        state = KillState(ledger.kill_state(cur, self.mode)[0])
        equity, peak, day_start = ledger.mark_equity(cur, self.mode, self.quote, at)
        new, reason = evaluate(state, equity, peak, day_start, self.risk.kill)
        if new is not state:
            log.error("kill switch %s: %s", new.value, reason)
            ledger.set_kill_state(cur, self.mode, new.value, f"{reason} at {at:%Y-%m-%d %H:%M}", "risk")
        return new

    def _halt(self, sleeve: Sleeve, open_time: datetime, reason: str) -> None:
        sleeve.halted = reason
        log.error("sleeve %s halted: %s", sleeve.name, reason)
        with self._transaction() as cur:
            ledger.halt_sleeve(cur, self.mode, sleeve.name, reason)
            ledger.record_event(cur, self.mode, "strategy_error", reason, sleeve.name, open_time, sleeve.strategy.name)

    def _broker_failed(self, err: RetryableError) -> None:
        self.broker_error = str(err)

    def probe_broker(self) -> bool:
        """Whether the venue answers (a cheap request; the paper broker always does)."""
        probe = getattr(self.broker, "sync_time", None)
        if probe is None:
            return True
        try:
            probe()
        except RetryableError as err:
            self.broker_error = str(err)
            return False
        return True

    def connection_lost(self) -> bool:
        """Whether the ledger's connection died (e.g. "SSL SYSCALL error: EOF detected" is a plain DatabaseError)."""
        return getattr(self, "_conn", None) is None or bool(self._conn.closed)

    def reset_connection(self) -> None:
        """Drop the database connection after it failed; the next transaction opens a new one."""
        conn, self._conn = getattr(self, "_conn", None), None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass

    def _transaction(self):
        return Transaction(self._db)

    @property
    def _db(self):
        if getattr(self, "_conn", None) is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        if getattr(self, "_conn", None) is not None:
            self._conn.close()


class Transaction:
    """One transaction on ``conn``: commit on success, roll back on any exception (a crash loses it whole)."""

    def __init__(self, conn) -> None:
        self._conn = conn

    def __enter__(self):
        self._cur = self._conn.cursor()
        return self._cur

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._conn.commit()
            elif not self._conn.closed:
                try:
                    self._conn.rollback()
                except psycopg2.Error:  # the connection died meanwhile: the original error propagates
                    pass
        finally:
            try:
                self._cur.close()
            except psycopg2.Error:
                pass


def db_candles(connect: Callable, mode: str = "paper"):
    """A ``candles_after`` for the paper broker reading ``market.candles`` on its own connection (the sleeves'
    progress of ``mode``)."""
    holder: list = []

    def candles_after(symbol: str, interval: str, after_ms: int, limit: int, sleeve: str):
        if not holder or holder[0].closed:
            holder[:] = [connect()]
        with Transaction(holder[0]) as cur:
            return ledger.candles_after(cur, symbol, interval, after_ms, limit, sleeve, mode)

    return candles_after


def run_forever(trader: Trader, listen: Callable, should_stop: Callable[[], bool], poll_interval: float,
                emit: Callable[[str], None], on_step: Callable[[float], None] = lambda seconds: None,
                outages: Outages | None = None, max_delay: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """Step on every ``NOTIFY klinepipe_features`` and at least every ``poll_interval`` seconds, until ``should_stop``.

    ``listen()`` opens a connection that LISTENs on ``klinepipe_features``. PostgreSQL or the venue going away
    never ends the loop: ``outages`` reports it once (and once when it is back), the loop retries with a backoff
    capped at ``max_delay`` seconds, and the ledger's crash-safety (orders recorded before they are sent,
    looked up by client order id before any resend) means a step cut short orders nothing twice.
    ``on_step`` gets each step's duration in seconds (the metrics' seam)."""
    outages = outages or Outages(emit)
    backoff, listen_conn = Backoff(max_delay), None

    def pause(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not should_stop() and time.monotonic() < deadline:
            sleep(min(0.2, max(deadline - time.monotonic(), 0)))

    while not should_stop():
        try:
            if not outages.up("binance"):
                if not trader.probe_broker():
                    pause(backoff.delay())
                    continue
                outages.recovered("binance")
            if listen_conn is None:
                listen_conn = listen()
            started = time.monotonic()
            decisions = trader.step()
            outages.recovered("postgres")
            for decision in decisions:
                emit(decision.line())
            on_step(time.monotonic() - started)
            if trader.broker_error is not None:
                outages.failed("binance", trader.broker_error)
                pause(backoff.delay())
                continue
            backoff.reset()
            if select.select([listen_conn], [], [], poll_interval)[0]:
                listen_conn.poll()
                listen_conn.notifies.clear()
        except (psycopg2.DatabaseError, psycopg2.InterfaceError) as exc:
            if not isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError) and not trader.connection_lost():
                raise  # an SQL error on a live connection is a bug, not an outage
            outages.failed("postgres", pg_reason(exc))
            trader.reset_connection()
            if listen_conn is not None:
                try:
                    listen_conn.close()
                except psycopg2.Error:
                    pass
                listen_conn = None
            pause(backoff.delay())
    if listen_conn is not None:
        listen_conn.close()
