"""What the kill switch does beyond blocking orders: REDUCING flattens, HALTED cancels (``KillPolicy``).

``KillActions.act()`` runs at the start and at the end of every step of the loop; it is idempotent, so a crash
anywhere in it is repaired by the next run:

* REDUCING + ``flatten``: first the sleeve's protection set (``trader.protector``: its stop / take-profit legs) is
  cancelled as one (``Broker.cancel_protection``: canceling a leg of an OCO cancels the list) and what the venue says
  of each leg applied -- a leg that filled meanwhile is the position's exit (``order_records.apply_report``), so
  there is nothing left to flatten and no second SELL; then its other open orders than MARKET exits (a resting
  entry, a resting LIMIT exit) are cancelled; then every sleeve holding more than dust, with no order of its own
  still open (protection legs included: a set whose cancel was refused blocks the flatten), gets ONE
  MARKET SELL of its whole position, recorded PENDING_SUBMIT (with a ``kill_switch_action`` event) in the same
  transaction, under the sleeve's lock, before it is sent. Its client order id is deterministic
  (``(mode, sleeve, the sleeve's last decided candle, FLATTEN)`` -> ``...-F``), so a restart finds the recorded
  order and the executor looks it up before any resend: killed mid-flatten, restarted, never two exits.
* HALTED + ``cancel`` / ``cancel_all``: every open entry and exit of the ledger is cancelled at the venue and its
  final state applied (fills it got before are kept); an order the venue never saw is cancelled in the ledger only.
  The protection sets stay working under ``cancel`` (the default: a halt keeps the positions' stops at the
  exchange) and are cancelled as sets under ``cancel_all`` (which also stops the protector placing new ones,
  ``Executor.hold_protection``, until the resume: then each position still open gets a new set, its next generation,
  ``trader.protector``; REDUCING + ``flatten`` replaces none either, ``Executor.hold_replacement``). Each cancel is
  one event (one per leg of a set). While HALTED the executor submits nothing (``Executor.hold``).
Every action is logged at WARNING and recorded in ``trading.events`` (kind ``kill_switch_action``), which the
notification outbox reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from trader import account_records, market_reads, order_records, protection_records, sleeve_records, timestamps
from trader.brokers.base import Broker
from trader.errors import FatalError, RetryableError
from trader.execution import Executor
from trader.filters import is_dust, prepare_order
from trader.orders import OrderIntent, OrderReport
from trader.risk.killswitch import KillPolicy, KillState
from trader.sleeve import Sleeve
from trader.symbols import status_block

log = logging.getLogger(__name__)
EVENT = "kill_switch_action"


class KillActions:
    def __init__(self, transaction: Callable, executor: Executor, sleeves: list[Sleeve], policy: KillPolicy) -> None:
        self._tx, self.executor, self.sleeves, self.policy = transaction, executor, sleeves, policy
        self.broker: Broker = executor.broker
        self.mode = self.broker.mode
        self._failed: set[str] = set()  # orders whose cancel was refused: not retried every step of this process

    def act(self) -> KillState:
        """Apply the policy of the current kill-switch state; return that state."""
        with self._tx() as cur:
            state = account_records.kill_state(cur, self.mode).state
        self.executor.hold = state is KillState.HALTED
        self.executor.hold_protection = self.policy.holds_protection(state)
        self.executor.hold_replacement = self.policy.holds_replacement(state)
        try:
            if state is KillState.REDUCING and self.policy.on_reducing == "flatten":
                for sleeve in self.sleeves:
                    self._cancel_protection("REDUCING", sleeve.name)
                    self._cancel_open_orders("REDUCING", lambda intent, s=sleeve.name: intent.sleeve == s
                                             and not _market_exit(intent))
                    if self._flatten(sleeve):
                        self.executor.settle(sleeve.name)
            elif state is KillState.HALTED and self.policy.on_halted != "keep":
                if self.policy.holds_protection(state):  # cancel_all: the sets too (cancel keeps the stops working)
                    self._cancel_protection("HALTED")
                self._cancel_open_orders("HALTED", lambda intent: self.policy.cancels(intent.intent))
        except RetryableError as err:  # the venue is away: the next step tries again
            self.executor.on_retryable(err)
        return state

    def _flatten(self, sleeve: Sleeve) -> bool:
        """Record the sleeve's flattening exit when it needs one; whether one was recorded."""
        with self._tx() as cur:
            last = sleeve_records.lock_sleeve(cur, self.mode, sleeve.name)
            held = sleeve_records.position(cur, self.mode, sleeve.name)
            close = market_reads.latest_close(cur, sleeve.symbol, sleeve.interval)
            if held <= 0 or last is None or close is None or order_records.open_orders(cur, self.mode, sleeve.name, protection=None):
                return False
            rules = self.broker.rules(sleeve.symbol)
            if is_dust(rules, held, close):
                return False
            blocked = status_block(sleeve.symbol, self.broker.symbol_status(sleeve.symbol))
            try:
                if blocked:
                    raise FatalError(blocked)
                prepared = prepare_order(rules, "SELL", "MARKET", held, close)
            except FatalError as err:
                self._record_once(cur, sleeve, last, f"REDUCING: cannot flatten {sleeve.name}: {err}")
                return False
            intent = OrderIntent(sleeve=sleeve.name, symbol=sleeve.symbol, side="SELL", quantity=prepared.quantity,
                                 open_time_ms=timestamps.to_ms(last), type="MARKET", intent="FLATTEN",
                                 interval=sleeve.interval, mode=self.mode)
            if not order_records.insert_order(cur, intent, self.mode, close):
                return False  # this candle's flatten was recorded before (and is final): one per sleeve and candle
            detail = f"REDUCING: flatten {sleeve.name}: MARKET SELL {prepared.quantity} {sleeve.symbol} ({intent.client_order_id})"
            sleeve_records.record_event(cur, self.mode, EVENT, detail, sleeve.name, last, "flatten")
        log.warning("kill switch %s", detail)
        return True

    def _record_once(self, cur, sleeve: Sleeve, last, detail: str) -> None:
        if detail not in self._failed:
            self._failed.add(detail)
            log.error("kill switch %s", detail)
            sleeve_records.record_event(cur, self.mode, EVENT, detail, sleeve.name, last, "flatten_refused")

    def _cancel_protection(self, state: str, sleeve: str | None = None) -> None:
        """Cancel the open protection sets (of ``sleeve``, or all), each as one; apply and record what became of each leg."""
        with self._tx() as cur:
            sets = protection_records.protection_legs(cur, self.mode, sleeve)
        for rows in sets.values():
            legs = [intent for intent, _, _ in rows]
            if any(leg.client_order_id in self._failed for leg in legs):
                continue
            if all(status == "PENDING_SUBMIT" and attempts == 0 for _, status, attempts in rows):
                reports: list[OrderReport | None] = [None] * len(legs)  # never sent
            else:
                try:
                    reports = self.broker.cancel_protection(legs)
                except FatalError as err:
                    self._failed.update(leg.client_order_id for leg in legs)
                    with self._tx() as cur:
                        for leg in legs:
                            order_records.record_order_error(cur, self.mode, leg, "fatal", f"cancel refused: {err}", final=False)
                    continue
            with self._tx() as cur:  # the set's legs in one transaction: a filled one is the exit, its sibling closed
                for (leg, status, _), report in zip(rows, reports):
                    self._applied(cur, state, leg, status, report)

    def _applied(self, cur, state: str, intent: OrderIntent, status: str, report: OrderReport | None) -> None:
        """Apply the venue's answer to a cancel (``None``: it never saw the order, cancelled in the ledger only); one event."""
        report = report or OrderReport(client_order_id=intent.client_order_id, status="CANCELED")
        self.executor.stored_fills += [(intent, f) for f in order_records.apply_report(cur, self.mode, intent, report)]
        detail = (f"{state}: cancel {intent.client_order_id} ({intent.side} {intent.quantity} {intent.symbol}, "
                  f"was {status}): now {report.status}")
        sleeve_records.record_event(cur, self.mode, EVENT, detail, intent.sleeve, timestamps.from_ms(intent.open_time_ms), "cancel")
        log.warning("kill switch %s", detail)

    def _cancel_open_orders(self, state: str, applies: Callable[[OrderIntent], bool]) -> None:
        with self._tx() as cur:
            pending = order_records.open_orders(cur, self.mode)  # protection legs: _cancel_protection, as sets
        for intent, status, attempts in pending:
            if not applies(intent) or intent.client_order_id in self._failed:
                continue
            try:
                report = self.broker.cancel(intent) if status != "PENDING_SUBMIT" or attempts > 0 else None
            except FatalError as err:
                self._failed.add(intent.client_order_id)
                with self._tx() as cur:
                    order_records.record_order_error(cur, self.mode, intent, "fatal", f"cancel refused: {err}", final=False)
                continue
            with self._tx() as cur:
                self._applied(cur, state, intent, status, report)


def _market_exit(intent: OrderIntent) -> bool:
    """A MARKET SELL (the strategy's exit or a flatten): it takes the position off by itself, so REDUCING lets it be."""
    return intent.side == "SELL" and intent.type == "MARKET"
