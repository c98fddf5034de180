"""The trader's main loop: per sleeve and new closed candle — load, decide, check risk, size, record, submit.

``Trader.step()`` is the whole process on one screen:

1. the kill switch acts (``kill_actions``: REDUCING flattens, HALTED cancels, both as configured), then ``settle``:
   pending orders go to the venue, open ones are refreshed (paper: filled at the next open); around it, the
   ``protector`` cancels the protection of a sleeve about to exit and places it for a new entry fill.
2. for each active sleeve, for each candle not decided yet, in ONE transaction holding the sleeve's lock:
   ``decide`` (strategy via a guard) -> ``mark_equity`` + kill switch -> read the bar's snapshot once ->
   ``bar_plan.plan_order`` (pure: size, exchange filters, balance, risk rules) -> record signal, order intent
   (PENDING_SUBMIT), events, progress; then ``settle`` that sleeve. A crash between any two steps leaves the
   ledger consistent.
3. the kill switch acts again (it may have tripped while deciding).
A strategy that raises halts its own sleeve (persisted, recorded); the others go on. A sleeve reads only the
columns its strategy declares; at start, every sleeve's feature specs are registered in ``etl.feature_specs``,
so that the features task stores them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import psycopg2

from klinepipe.binance.intervals import interval_ms
from klinepipe.feature_set import register_specs
from trader import account_records, market_reads, order_records, sleeve_records, timestamps
from trader.bar_plan import BarSnapshot, OrderPlan, plan_order
from trader.brokers.base import Broker
from trader.errors import RetryableError, StrategyError
from trader.execution import Executor
from trader.kill_actions import KillActions
from trader.protector import Protector
from trader.risk.killswitch import KillState, KillSwitchRule, evaluate
from trader.risk.symbol_status import SymbolStatusRule
from trader.sleeve import RiskConfig, Sleeve
from trader.strategies.base import Action, Signal, decide_safely
from trader.symbols import split_symbol
from trader.trades import Decision, Filled
from trader.transaction import Transaction

log = logging.getLogger(__name__)


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
        self._rules = (KillSwitchRule(), SymbolStatusRule(), *risk.rules)
        self.kill_actions = KillActions(self._transaction, self.executor, sleeves, risk.kill_policy)
        self.protector = Protector(self._transaction, self.executor, sleeves, risk)  # refuses settings a symbol cannot honour
        with self._transaction() as cur:
            for s in sleeves:
                sleeve_records.ensure_sleeve(cur, self.mode, s.name, s.symbol, s.interval, s.strategy.name, s.allocation)
                s.specs = s.strategy.feature_specs()
                register_specs(cur, s.specs, f"trader:{self.mode}:{s.name}")  # the features task stores them
                s.halted = s.halted or sleeve_records.halted_reason(cur, self.mode, s.name)
                if paper_balance is not None:
                    account_records.seed_balance(cur, self.mode, split_symbol(s.symbol)[1], paper_balance)
            state = account_records.kill_state(cur, self.mode).state
            self.executor.hold = state is KillState.HALTED  # reconcile submits nothing
            self.executor.hold_protection = risk.kill_policy.holds_protection(state)
            self.executor.hold_replacement = risk.kill_policy.holds_replacement(state)

    def step(self) -> list[Decision | Filled]:
        """Decide every new candle of every active sleeve; return the BUY/SELL orders recorded and the fills
        stored, in the order they happened (the console prints one line each)."""
        self.broker_error = None
        self.kill_actions.act()
        self._settle()
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
                    sleeve_records.record_event(cur, self.mode, "retry", str(err), sleeve.name)
        self.kill_actions.act()
        return trades + self._fills()

    def _settle(self, sleeve: str | None = None) -> None:
        """Orders to the venue and its answers in; a sleeve about to exit has its protection cancelled first, a new
        entry fill gets its protection placed right after."""
        self.protector.settle(sleeve)
        self.executor.settle(sleeve)
        self.protector.settle(sleeve)

    def _fills(self) -> list[Filled]:
        """The fills the executor stored since the last call."""
        stored, self.executor.stored_fills[:] = list(self.executor.stored_fills), []
        return [Filled(sleeve=i.sleeve, side=i.side, quantity=f.quantity, price=f.price, fee=f.fee, fee_asset=f.fee_asset,
                       filled_at=timestamps.from_ms(f.filled_at_ms or i.open_time_ms),
                       signal_open_time=timestamps.from_ms(i.open_time_ms))
                for i, f in stored]

    def _run_sleeve(self, sleeve: Sleeve) -> list[Decision | Filled]:
        with self._transaction() as cur:
            last = sleeve_records.lock_sleeve(cur, self.mode, sleeve.name)
            frame = market_reads.load_new_features(cur, sleeve.symbol, sleeve.interval, last, max(sleeve.strategy.warmup - 1, 0),
                                                   sleeve.strategy.required_features, sleeve.specs)
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
            self._settle(sleeve.name)
            trades += self._fills()
            if self.broker_error is not None:
                break  # the order waits for the venue; the next candles are decided after it went out
        return trades

    def _decide_bar(self, cur, sleeve: Sleeve, window) -> Decision | None:
        bar = window.iloc[-1]
        open_time, close = bar["open_time"], Decimal(bar["close"])
        last = sleeve_records.lock_sleeve(cur, self.mode, sleeve.name)
        if last is not None and open_time <= last:
            return None  # another trader decided it meanwhile
        signal = decide_safely(sleeve.strategy, window)
        kill = self._update_kill_switch(cur, open_time)
        plan = self._plan(cur, sleeve, signal, open_time, close, kill)
        if plan.block is not None:
            sleeve_records.record_event(cur, self.mode, "risk_block", plan.block.reason, sleeve.name, open_time, plan.block.rule)
        sleeve_records.record_signal(cur, self.mode, sleeve.name, sleeve.symbol, sleeve.interval, open_time,
                                     sleeve.strategy.name, signal.action.value, plan.reason)
        sleeve_records.advance_sleeve(cur, self.mode, sleeve.name, open_time)
        decided = dict(sleeve=sleeve.name, open_time=open_time, action=signal.action.value, reason=plan.reason)
        intent, legs = self.protector.entry_set(cur, sleeve, plan.intent) if plan.intent is not None else (None, [])
        if intent is None or not order_records.insert_order(cur, intent, self.mode, close):
            return Decision(**decided)
        for leg in legs:  # a LIMIT entry's protection, recorded with it: they go out as one OTOCO / OTO list
            order_records.insert_order(cur, leg, self.mode, intent.price)
        return Decision(**decided, quantity=intent.quantity, price=intent.price or close, order_type=intent.type)

    def _plan(self, cur, sleeve: Sleeve, signal: Signal, open_time: datetime, close: Decimal, kill: KillState) -> OrderPlan:
        """The order this signal asks for: no order for HOLD or while one of the sleeve's is open; else read the
        bar's snapshot once and let ``plan_order`` size, filter and risk-check it."""
        if signal.action is Action.HOLD:
            return OrderPlan(intent=None, reason=signal.reason)
        if order_records.open_orders(cur, self.mode, sleeve.name):
            return OrderPlan(intent=None, reason=f"{signal.reason}; an order of this sleeve is still open")
        snap = self._snapshot(cur, sleeve, open_time, kill)
        return plan_order(snap, sleeve=sleeve, action=signal.action, reason=signal.reason, close=close, mode=self.mode,
                          open_time_ms=timestamps.to_ms(open_time), interval_ms=interval_ms(sleeve.interval),
                          risk=self.risk, rules=list(self._rules))

    def _snapshot(self, cur, sleeve: Sleeve, open_time: datetime, kill: KillState) -> BarSnapshot:
        """Everything ``plan_order`` looks at, read once: the sleeve's position, balances, the venue's filters and
        fee, exposure, recent orders and the newest data."""
        base, quote = split_symbol(sleeve.symbol)
        held = sleeve_records.position(cur, self.mode, sleeve.name)
        rules, fee = self.broker.rules(sleeve.symbol), self.broker.fee_bps()
        now_ms = int(self._clock() * 1000)
        return BarSnapshot(held=held, free_quote=account_records.balance(cur, self.mode, quote),
                           free_base=account_records.balance(cur, self.mode, base), rules=rules, fee_bps=fee,
                           exposure=account_records.exposures(cur, self.mode, open_time),
                           recent_orders_ms=order_records.recent_order_times(cur, self.mode,
                                                                             timestamps.from_ms(now_ms - 3_600_000)),
                           data_as_of_ms=self._data_as_of_ms(cur, sleeve), now_ms=now_ms, kill=kill,
                           symbol_status=self.broker.symbol_status(sleeve.symbol))

    def _data_as_of_ms(self, cur, sleeve: Sleeve) -> int | None:
        newest = market_reads.newest_candle(cur, sleeve.symbol, sleeve.interval)
        if newest is None:
            return None
        return timestamps.to_ms(newest[1] if self.risk.staleness_basis == "ingested_at" else newest[0])

    def _update_kill_switch(self, cur, at: datetime) -> KillState:
        state = account_records.kill_state(cur, self.mode).state
        equity, peak, day_start = account_records.mark_equity(cur, self.mode, self.quote, at)
        new, reason = evaluate(state, equity, peak, day_start, self.risk.kill)
        self.executor.hold = new is KillState.HALTED
        self.executor.hold_protection = self.risk.kill_policy.holds_protection(new)
        self.executor.hold_replacement = self.risk.kill_policy.holds_replacement(new)
        if new is not state:
            log.error("kill switch %s: %s", new.value, reason)
            account_records.set_kill_state(cur, self.mode, new.value, f"{reason} at {at:%Y-%m-%d %H:%M}", "risk")
        return new

    def _halt(self, sleeve: Sleeve, open_time: datetime, reason: str) -> None:
        sleeve.halted = reason
        log.error("sleeve %s halted: %s", sleeve.name, reason)
        with self._transaction() as cur:
            sleeve_records.halt_sleeve(cur, self.mode, sleeve.name, reason)
            sleeve_records.record_event(cur, self.mode, "strategy_error", reason, sleeve.name, open_time, sleeve.strategy.name)

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

    def record_outage(self, line: str) -> bool:
        """Record an outage line (``binance down: ...``, ``postgres back after ...``) as an event, which the outbox
        tells the operator; ``False`` when PostgreSQL itself is away (the line was printed, nothing waits for it)."""
        try:
            with self._transaction() as cur:
                sleeve_records.record_event(cur, self.mode, "outage", line)
            return True
        except (psycopg2.DatabaseError, psycopg2.InterfaceError) as exc:
            if not isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError) and not self.connection_lost():
                raise  # an SQL error on a live connection is a bug, not an outage
            self.reset_connection()
            return False

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
