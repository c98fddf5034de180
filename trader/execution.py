"""Getting recorded orders to the venue and the venue's answers into the ledger, crash-safe.

For every order the ledger holds as not final:
* PENDING_SUBMIT: raise ``attempts`` and COMMIT, then (when this is not the first attempt) look the
  client order id up at the venue first; submit only when the venue never saw it. A crash anywhere
  leaves either an order the venue does not know (submitted on restart) or one it knows (found by the
  lookup): never two.
* NEW / PARTIALLY_FILLED: look it up and apply what changed (new fills only).
While ``hold`` is set (the kill switch is HALTED) nothing is submitted; open orders are still refreshed. Protection
legs are the protector's: it keeps placing them while HALTED unless ``hold_protection`` (``cancel_all``) is set.
429/418 are honoured by waiting ``Retry-After`` (injected ``sleep``); other retryable errors leave the
order for the next pass; fatal errors reject it. Every error is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from trader import order_records
from trader.brokers.base import Broker
from trader.errors import FatalError, RateLimited, RetryableError
from trader.orders import Fill, OrderIntent, OrderReport

log = logging.getLogger(__name__)


class Executor:
    def __init__(self, transaction: Callable, broker: Broker, sleep: Callable[[float], None], max_waits: int = 3) -> None:
        self._tx, self.broker, self._sleep, self._max_waits = transaction, broker, sleep, max_waits
        self.stored_fills: list[tuple[OrderIntent, Fill]] = []  # fills new to the ledger; the trader's console drains it
        self.on_retryable: Callable[[RetryableError], None] = lambda err: None  # the loop's outage tracking
        self.hold = False  # HALTED: submit nothing (the kill switch's actions set it)
        self.hold_protection = False  # HALTED with cancel_all: the protector records (so places) no new set either
        self.hold_replacement = False  # the protector replaces no ended set (KillPolicy.holds_replacement)

    def settle(self, sleeve: str | None = None) -> None:
        """Submit pending orders and refresh open ones (of ``sleeve``, or all)."""
        with self._tx() as cur:
            pending = order_records.open_orders(cur, self.broker.mode, sleeve)
        for intent, status, _ in pending:
            if status == "PENDING_SUBMIT":
                if intent.list_id:  # an entry going out with its protection (OTOCO / OTO): the protector sends the list
                    continue
                if not self.hold:
                    self.submit(intent)
            else:
                self.refresh(intent)

    def submit(self, intent: OrderIntent) -> OrderReport | None:
        for _ in range(self._max_waits + 1):
            with self._tx() as cur:
                attempts = order_records.bump_attempts(cur, intent.client_order_id)
            try:
                report = self.broker.lookup(intent) if attempts > 1 else None
                report = report or self.broker.submit(intent)
            except RateLimited as err:
                self._error(intent, "retryable", str(err), final=False)
                self._sleep(err.retry_after or 60)
                continue
            except RetryableError as err:
                self.on_retryable(err)
                self._error(intent, "retryable", str(err), final=False)
                return None
            except FatalError as err:
                self._error(intent, "fatal", str(err), final=True)
                return None
            return self._apply(intent, report)
        return None

    def refresh(self, intent: OrderIntent) -> OrderReport | None:
        try:
            report = self.broker.lookup(intent)
        except RetryableError as err:
            self.on_retryable(err)
            self._error(intent, "retryable", str(err), final=False)
            return None
        if report is None:
            self._error(intent, "fatal", "the venue does not know this accepted order", final=False)
            return None
        return self._apply(intent, report)

    def _apply(self, intent: OrderIntent, report: OrderReport) -> OrderReport:
        with self._tx() as cur:
            new = order_records.apply_report(cur, self.broker.mode, intent, report)
        self.stored_fills += [(intent, fill) for fill in new]
        return report

    def _error(self, intent: OrderIntent, kind: str, message: str, final: bool) -> None:
        # a retryable error is recorded here and reported once per outage by the loop, not once per attempt
        log.log(logging.ERROR if kind == "fatal" else logging.DEBUG, "order %s: %s error: %s", intent.client_order_id, kind, message)
        with self._tx() as cur:
            order_records.record_order_error(cur, self.broker.mode, intent, kind, message, final)
