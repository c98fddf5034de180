"""Protection held by the exchange, per position: placed as soon as the entry's fill is in the ledger, cancelled
before the exit by signal goes out, its fill the position's exit. Crash-safe like ``trader.execution``:

1. the set's legs are recorded (PENDING_SUBMIT, ids derived from the entry's client order id: ``-PL`` list, ``-PS``
   stop, ``-PT`` take-profit) in one transaction, at most once per entry and generation (``_generation``): a restart
   never derives a second set. A set that ended while the position is still open (cancelled by the kill switch's
   ``cancel_all`` or by hand, expired by the venue) is followed by the next generation (``...-B2-PS``), for the
   position's quantity now and the entry's prices, once the kill switch allows it (after the resume); a REJECTED one is
   not (it would be refused again): the position is told unprotected (a fatal ``order_error``, notified);
2. ``attempts`` is raised and committed, then the venue is ASKED FIRST (each leg by its client order id); only when
   it knows none of them is the set placed, in one request (a lone stop, or an OCO list);
3. every answer is applied to the ledger (``order_records.apply_report``: a filled leg moves the position like any
   SELL; its sibling ends EXPIRED).
A crash after the entry fill and before 1, between 1 and 2, or after 2 and before 3 leaves either no set at the
venue (placed on restart) or one (found by the lookup): exactly one, never none for long.
A LIMIT entry of a sleeve whose symbol allows it (``protection.entry_form``) goes out WITH its set, as one OTOCO (or
OTO) list: the legs are priced from the entry's limit and recorded with the entry in the decision's transaction
(``entry_set``; the entry carries the list id, so the executor leaves it to the protector), then asked for and placed
as above, entry first; the venue holds the legs (``PENDING_NEW``) until the entry fills, so the position is protected
from its first moment even with the trader dead. An entry that ends unfilled takes its legs with it.
A sleeve's exit (a strategy SELL or a flatten, PENDING_SUBMIT) first cancels the set; if a leg filled meanwhile, the
position is gone and the exit is refused (``REJECTED``: "the protection exited the position first").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from trader import order_records, protection_records, sleeve_records, timestamps
from trader.errors import ConfigError, FatalError, RetryableError
from trader.filters import is_dust, round_to_step
from trader.orders import FINAL_STATUSES, OPEN_STATUSES, OrderIntent, OrderReport
from trader.protection import (MAX_GENERATION, ProtectionRefused, ProtectionSet, choose_form, entry_form, protection_set,
                               set_base)
from trader.sleeve import RiskConfig, Sleeve, sleeve_risk

log = logging.getLogger(__name__)


class Protector:
    def __init__(self, transaction: Callable, executor, sleeves: list[Sleeve], risk: RiskConfig | None = None) -> None:
        self._tx, self.executor, self.broker = transaction, executor, executor.broker
        self.mode = self.broker.mode
        self.sleeves = {s.name: s for s in sleeves}
        self.forms: dict[str, str] = {}
        self._unprotected: set[str] = set()  # sets not replaced (REJECTED, or the last generation): told once per process
        self.with_entry: dict[str, str] = {}  # sleeve -> OTOCO | OTO: its LIMIT entries go out with their set
        for s in sleeves:  # refused at start, with the reason, when the symbol cannot honour the settings
            if s.protection is None or not s.protection.active:
                continue
            try:
                flags = self.broker.protection_flags(s.symbol)
                form = choose_form(s.protection, flags)
                with_entry = entry_form(s.protection, form, flags, sleeve_risk(risk or RiskConfig(), s).order_type)
            except ProtectionRefused as exc:
                raise ConfigError(f"sleeve {s.name}: protection refused: {exc}") from None
            self.forms[s.name] = form
            if with_entry is not None:
                self.with_entry[s.name] = with_entry

    def settle(self, sleeve: str | None = None) -> None:
        """Cancel the set of a sleeve about to exit, record the set of a new entry, place and refresh the sets."""
        names = [sleeve] if sleeve is not None else list(self.sleeves)
        try:
            for name in names:
                self._cancel_before_exit(name)
                self._record_new_set(name)
            with self._tx() as cur:
                sets = protection_records.protection_legs(cur, self.mode, sleeve)
            for key, legs in sets.items():
                self._place_or_refresh(self._with_entry(key, legs))
        except RetryableError as err:  # the venue is away: the next step goes on
            self.executor.on_retryable(err)
            log.debug("protection: %s; retrying on the next step", err)

    # --- 1. record ------------------------------------------------------------------------------------
    def _record_new_set(self, name: str) -> None:
        s, form = self.sleeves[name], self.forms.get(name)
        if form is None or self.executor.hold_protection:  # HALTED with cancel_all: recorded and placed on resume
            return
        with self._tx() as cur:
            sleeve_records.lock_sleeve(cur, self.mode, name)
            held = sleeve_records.position(cur, self.mode, name)
            entry = protection_records.newest_entry(cur, self.mode, name)
            if held <= 0 or entry is None:
                return
            generation = self._generation(cur, name, entry[0])
            if generation is None:
                return
            if protection_records.pending_exit(cur, self.mode, name) is not None:
                return  # exiting anyway
            entry_cid, entry_price, open_ms = entry
            rules = self.broker.rules(s.symbol)
            qty = round_to_step(held, (rules.market_lot.step if rules.market_lot and rules.market_lot.step else rules.lot.step))
            if is_dust(rules, qty, entry_price):
                return
            atr = protection_records.atr_at(cur, s.symbol, s.interval, open_ms) if s.protection.uses_atr else None
            try:
                pset = protection_set(s.protection, form, set_base(entry_cid, generation), qty, entry_price, rules.tick, atr)
            except ValueError as exc:  # e.g. no atr_14 for the entry bar
                sleeve_records.record_event(cur, self.mode, "protection_error", f"{entry_cid}: cannot protect: {exc}", name)
                log.error("sleeve %s: position of %s unprotected: %s", name, entry_cid, exc)
                return
            for intent in self._leg_intents(s, pset, open_ms, pset.list_client_order_id if len(pset.legs) > 1 else ""):
                order_records.insert_order(cur, intent, self.mode, entry_price)
            if generation > 1:
                detail = (f"{pset.list_client_order_id if len(pset.legs) > 1 else pset.legs[0].client_order_id}: generation "
                          f"{generation} for the {qty} {s.symbol} still held (the previous set ended without the exit)")
                sleeve_records.record_event(cur, self.mode, "protection_replaced", detail, name, timestamps.from_ms(open_ms),
                                            form)
                log.warning("sleeve %s: protection %s", name, detail)

    def _generation(self, cur, name: str, entry_cid: str) -> int | None:
        """The generation of the set to record for the open position of ``entry_cid`` (``None``: none to record).

        1 when none was ever recorded. The next one when the newest set is no longer live and the position it protected
        is still open: cancelled (by the kill switch's ``cancel_all``, by an exit that did not go through, by hand at the
        venue) or expired by the venue -- unless the kill switch holds replacements (``Executor.hold_replacement``:
        HALTED + cancel_all until the resume, REDUCING + flatten, which is taking the position off) or an exit of the
        sleeve is still open. A set the venue REJECTED is not placed again (the same set would be refused again, every
        step): an ``order_error`` (fatal: notified) says the position is unprotected, once per set and process; so does
        reaching ``MAX_GENERATION``. A crash after the set was recorded leaves it open in the ledger: the restart places
        it (asked for first), never the one after."""
        sets = protection_records.sets_of(cur, self.mode, entry_cid)
        if not sets:
            return 1
        newest = max(sets)
        legs = sets[newest]
        if any(status in OPEN_STATUSES for _, status in legs):
            return None  # live, or recorded and not sent yet (placed by _place_or_refresh)
        if self.executor.hold_replacement or protection_records.open_exit(cur, self.mode, name) is not None:
            return None
        rejected = [cid for cid, status in legs if status == "REJECTED"]
        if rejected or newest >= MAX_GENERATION:
            why = (f"{rejected[0]} was REJECTED by the venue: not placed again" if rejected
                   else f"{MAX_GENERATION} protection sets were placed for this position: no more")
            if legs[0][0] not in self._unprotected:
                self._unprotected.add(legs[0][0])
                sleeve_records.record_event(cur, self.mode, "order_error", f"{entry_cid}: the position is unprotected: {why}; "
                                            "protect or close it by hand", name, None, "fatal")
                log.error("sleeve %s: position of %s unprotected: %s", name, entry_cid, why)
            return None
        return newest + 1

    def _leg_intents(self, s: Sleeve, pset: ProtectionSet, open_ms: int, list_id: str) -> list[OrderIntent]:
        return [OrderIntent(sleeve=s.name, symbol=s.symbol, side="SELL", quantity=pset.quantity, open_time_ms=open_ms, type=leg.type,
                            price=leg.price, stop_price=leg.stop_price, trailing_delta=leg.trailing_delta,
                            time_in_force="GTC" if leg.type == "STOP_LOSS_LIMIT" else None,
                            intent="STOP_LOSS" if leg.client_order_id.endswith("-PS") else "TAKE_PROFIT",
                            interval=s.interval, mode=self.mode, stored_id=leg.client_order_id, list_id=list_id)
                for leg in pset.legs]

    # --- 1'. a LIMIT entry with its set (OTOCO / OTO), recorded in the decision's transaction ---------------
    def entry_set(self, cur, sleeve: Sleeve, entry: OrderIntent) -> tuple[OrderIntent, list[OrderIntent]]:
        """``(entry, legs)`` to record together: a LIMIT BUY of a sleeve whose entries go out with their protection comes
        back carrying its list id (``<entry id>-PL``) with the legs, priced from its limit (a fill can only be at it or
        better), for what the fill leaves after a commission in the base asset; any other order: ``(entry, [])``."""
        form = self.with_entry.get(sleeve.name)
        if form is None or entry.side != "BUY" or entry.type != "LIMIT" or entry.price is None or entry.intent not in ("", "BUY"):
            return entry, []
        rules = self.broker.rules(sleeve.symbol)
        step = rules.market_lot.step if rules.market_lot and rules.market_lot.step else rules.lot.step
        qty = round_to_step(entry.quantity * (1 - self.broker.fee_bps() / Decimal(10_000)), step)
        if is_dust(rules, qty, entry.price):
            return entry, []
        atr = protection_records.atr_at(cur, sleeve.symbol, sleeve.interval, entry.open_time_ms) if sleeve.protection.uses_atr else None
        try:
            pset = protection_set(sleeve.protection, self.forms[sleeve.name], entry.client_order_id, qty, entry.price, rules.tick, atr)
        except ValueError as exc:  # e.g. no atr_14 for the entry bar: the entry goes alone, its set follows the fill (or not)
            sleeve_records.record_event(cur, self.mode, "protection_error", f"{entry.client_order_id}: no {form}: {exc}", sleeve.name)
            return entry, []
        tagged = replace(entry, list_id=pset.list_client_order_id, stored_id=entry.client_order_id)
        return tagged, self._leg_intents(sleeve, pset, entry.open_time_ms, pset.list_client_order_id)

    def _with_entry(self, key: str, rows: list[tuple[OrderIntent, str, int]]) -> list[tuple[OrderIntent, str, int]]:
        """A set that went out with its entry (OTOCO / OTO) is handled with the entry first, until the entry filled (then
        the venue holds the legs as any set; the paper broker, which derives the legs' life from the entry's fill, always
        gets it); others as they are."""
        with self._tx() as cur:
            entry = protection_records.list_entry(cur, self.mode, key)
        if entry is None or (entry[1] == "FILLED" and not getattr(self.broker, "legs_need_entry", False)):
            return rows
        return [entry, *rows]

    # --- 2. place / refresh -----------------------------------------------------------------------------
    def _place_or_refresh(self, rows: list[tuple[OrderIntent, str, int]]) -> None:
        legs = [i for i, _, _ in rows]
        pending = any(status == "PENDING_SUBMIT" for _, status, _ in rows)
        entry_status = rows[0][1] if legs[0].side == "BUY" else None  # an OTOCO / OTO: its entry first
        if entry_status in FINAL_STATUSES and entry_status != "FILLED":  # e.g. expired, or cancelled by the kill switch
            self._end_with_entry(legs)
            return
        hold = entry_status is not None and self.executor.hold  # HALTED: no new entry goes out
        if pending and hold and rows[0][2] == 0:
            return
        try:
            if pending:
                with self._tx() as cur:
                    for leg in legs:
                        order_records.bump_attempts(cur, leg.client_order_id)
            reports = self.broker.lookup_protection(legs)  # asked first, always: a set it knows is never placed twice
            placed = pending and all(r is None for r in reports)
            if placed and hold:
                return
            if placed:
                reports = self.broker.place_protection(legs)
        except RetryableError as err:
            self._error(legs, "retryable", str(err), final=False)
            raise
        except FatalError as err:
            self._error(legs, "fatal", str(err), final=True)
            log.error("sleeve %s: protection %s refused by the venue, the position is unprotected: %s", legs[0].sleeve,
                      legs[0].client_order_id, err)
            return
        self._apply(legs, reports, "placed" if placed else "adopted" if pending else None)

    def _end_with_entry(self, orders: list[OrderIntent]) -> None:
        """The entry of an OTOCO / OTO ended unfilled: its legs end with it (the venue expired them with it; legs it never
        saw, or that the paper broker would still show open, are cancelled here)."""
        legs = orders[1:]
        try:
            known = self.broker.lookup_protection(legs)
        except RetryableError as err:
            self._error(legs, "retryable", str(err), final=False)
            raise
        reports = [r if r is not None and r.status in FINAL_STATUSES and r.status != "FILLED"
                   else OrderReport(client_order_id=leg.client_order_id, status="CANCELED") for leg, r in zip(legs, known)]
        self._apply(legs, reports, None)

    def _apply(self, legs: list[OrderIntent], reports: list[OrderReport | None], what: str | None) -> None:
        with self._tx() as cur:
            for leg, report in zip(legs, reports):
                if report is None:
                    continue
                new = order_records.apply_report(cur, self.mode, leg, report)  # a fill: also protection_triggered
                self.executor.stored_fills += [(leg, f) for f in new]
            if what is not None:  # placed now, or found at the venue after a crash (adopted, not placed again)
                entry = legs[0] if legs[0].side == "BUY" else None
                sells = [leg for leg in legs if leg.side == "SELL"]
                shown = ", ".join(f"{leg.type} {leg.stop_price or f'trailing {leg.trailing_delta} bips'}" for leg in sells)
                with_entry = f" with its entry LIMIT BUY {entry.quantity} at {entry.price}" if entry is not None else ""
                form = ("OTOCO" if len(sells) > 1 else "OTO") if entry is not None else "OCO" if legs[0].list_id else legs[0].type
                sleeve_records.record_event(cur, self.mode, "protection_placed",
                                            f"{legs[0].list_id or legs[0].client_order_id}: SELL {sells[0].quantity} {legs[0].symbol}: "
                                            f"{shown}{with_entry}{' (found at the venue: adopted)' if what == 'adopted' else ''}",
                                            legs[0].sleeve, timestamps.from_ms(legs[0].open_time_ms), form)

    # --- exit by signal -------------------------------------------------------------------------------
    def _cancel_before_exit(self, name: str) -> None:
        with self._tx() as cur:
            exit_ = protection_records.pending_exit(cur, self.mode, name)
            sets = protection_records.protection_legs(cur, self.mode, name) if exit_ is not None else {}
        if exit_ is None:
            return
        for key, rows in sets.items():
            rows = self._with_entry(key, rows)
            legs = [i for i, _, _ in rows]
            if all(status == "PENDING_SUBMIT" and attempts == 0 for i, status, attempts in rows if i.side == "SELL"):
                reports = [OrderReport(client_order_id=leg.client_order_id, status="CANCELED") if leg.side == "SELL" else None
                           for leg in legs]  # never sent
            else:
                reports = [r or (OrderReport(client_order_id=leg.client_order_id, status="CANCELED") if leg.side == "SELL" else None)
                           for leg, r in zip(legs, self.broker.cancel_protection(legs))]
            self._apply(legs, reports, None)
        if not sets:
            return
        with self._tx() as cur:
            held = sleeve_records.position(cur, self.mode, name)
            if held < exit_.quantity:
                order_records.record_order_error(cur, self.mode, exit_, "fatal", "the protection exited the position first "
                                                 f"(holds {held})", final=True)

    def _error(self, legs: list[OrderIntent], kind: str, message: str, final: bool) -> None:
        with self._tx() as cur:
            for leg in legs:
                order_records.record_order_error(cur, self.mode, leg, kind, message, final)
