"""Order lists of the fake (binance-protective-orders.md 3): OCO, OTO, OTOCO, their cancel and queries.

Mixed into ``OrderEngine`` (it uses the engine's ``spec``/``open``/``expire``/``cancel_one``). Contingency:
* OCO: the leg that triggers (a stop) or first fills (a LIMIT_MAKER) expires its sibling (``EXPIRED``,
  ``expiryReason`` ``OCO_TRIGGER``) -- before a triggered stop executes, after a LIMIT_MAKER's fill. Both legs share one
  balance lock (the larger of the two).
* OTO / OTOCO (``contingencyType`` ``OTO``): the pending leg(s) stay ``PENDING_NEW`` (no lock) until the working order is
  ``FILLED``, then go to work (an OTOCO pair then behaves as an OCO); pending legs that cannot be funded then are
  ``REJECTED``. A working order that expires expires the pending legs (``OTO_PHASE_ONE_EXPIRED``).
* Canceling any leg cancels the list. A list is ``ALL_DONE``/``ALL_DONE`` once no leg is open or pending.
"""

from __future__ import annotations

from decimal import Decimal

from tests.fake_binance import reports
from tests.fake_binance.errors import (
    CANCEL_REJECTED, INVALID_ORDER_TYPE, MSG_NO_LIST, MSG_OCO_NOT_SUPPORTED, MSG_OCO_PRICES,
    MSG_OTO_NOT_SUPPORTED, NO_SUCH_ORDER, OCO_CONTINGENT, OCO_PLACEMENT, OCO_TYPE_REJECTED, FakeBinanceError, one_of,
    rejected,
)
from tests.fake_binance.rules import OPEN, check_counts, check_trading

LEG_FIELDS = {"type": "Type", "price": "Price", "stopPrice": "StopPrice", "trailingDelta": "TrailingDelta",
              "timeInForce": "TimeInForce", "newClientOrderId": "ClientOrderId"}
OCO_TYPES = ("LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
LIVE = (*OPEN, "PENDING_NEW")


def leg_params(p: dict, prefix: str, side: str, quantity: str) -> tuple[dict, dict]:
    """One leg's order parameters out of a list request (``abovePrice`` -> ``price``) and the names it used."""
    names = {k: prefix + v for k, v in LEG_FIELDS.items()} | {"side": side, "quantity": quantity}
    params = {k: p.get(n) for k, n in names.items()} | {"selfTradePreventionMode": p.get("selfTradePreventionMode")}
    return params, names


def _kind(type_: str) -> str:
    return "LIMIT" if type_ == "LIMIT_MAKER" else "STOP" if type_.startswith("STOP_LOSS") else "TAKE_PROFIT"


def check_oco_pair(side: str, above: dict, below: dict, last: Decimal | None) -> None:
    """Types, sides and (with ``last``) the price relationship of an OCO pair (3.2)."""
    for leg in (above, below):
        if leg["type"] not in OCO_TYPES:
            raise FakeBinanceError(400, OCO_TYPE_REJECTED, "Order type not supported in OCO.")
    kinds = (_kind(above["type"]), _kind(below["type"]))
    if "STOP" not in kinds:
        raise FakeBinanceError(400, OCO_CONTINGENT, "At least one OCO order must be contingent.")
    if kinds == ("STOP", "STOP"):
        raise FakeBinanceError(400, OCO_TYPE_REJECTED, "Order type not supported in OCO.")
    stop_above = kinds[0] == "STOP"
    if stop_above != (side == "BUY"):  # SELL: the stop is below; BUY: above
        other = kinds[1] if stop_above else kinds[0]
        raise FakeBinanceError(400, *OCO_PLACEMENT[(side, other)])
    stop, other = (above, below) if stop_above else (below, above)
    level = other["price"] if other["type"] in ("LIMIT_MAKER", "TAKE_PROFIT_LIMIT") else other["stop"]
    marks = [m for m in (level, last, stop["stop"]) if m is not None]
    if side == "BUY":
        marks.reverse()
    if any(a <= b for a, b in zip(marks, marks[1:])):
        raise rejected(MSG_OCO_PRICES)


class OrderLists:
    def __init__(self) -> None:
        self.lists: dict[int, dict] = {}
        self._next_list = 1

    # --- placing ------------------------------------------------------------------------------
    def place_oco(self, p: dict, now: int) -> dict:
        info = self._list_symbol(p, oco=True, oto=False)
        above, below = (self.spec(info, *leg_params(p, pre, "side", "quantity")) for pre in ("above", "below"))
        check_oco_pair(p.get("side"), above, below, self.market.price(info.symbol))
        return self._place(info, p, now, "OCO", [above, below], working=None)

    def place_oto(self, p: dict, now: int, pair: bool = False) -> dict:
        info = self._list_symbol(p, oco=pair, oto=True)
        working = self.spec(info, *leg_params(p, "working", "workingSide", "workingQuantity"))
        if working["type"] not in ("LIMIT", "LIMIT_MAKER"):
            raise FakeBinanceError(400, INVALID_ORDER_TYPE, "Invalid orderType.")
        prefixes = ("pendingAbove", "pendingBelow") if pair else ("pending",)
        pending = [self.spec(info, *leg_params(p, pre, "pendingSide", "pendingQuantity")) for pre in prefixes]
        if pair:
            check_oco_pair(p.get("pendingSide"), pending[0], pending[1], None)
        return self._place(info, p, now, "OTO", [working, *pending], working=working)

    def place_otoco(self, p: dict, now: int) -> dict:
        return self.place_oto(p, now, pair=True)

    def _list_symbol(self, p: dict, oco: bool, oto: bool):
        info = self.market.symbol(p.get("symbol"))
        check_trading(info)
        if oto and not info.oto_allowed:
            raise rejected(MSG_OTO_NOT_SUPPORTED)
        if oco and not info.oco_allowed:
            raise rejected(MSG_OCO_NOT_SUPPORTED)
        return info

    def _place(self, info, p: dict, now: int, contingency: str, specs: list[dict], working: dict | None) -> dict:
        list_cid = p.get("listClientOrderId") or f"fakelist{self._next_list:016d}"
        if any(lst["listClientOrderId"] == list_cid for lst in self.open_lists()):
            raise rejected("Duplicate order sent.")
        check_counts(info, self.open_for(info.symbol, pending=True), specs, len(self.open_lists(info.symbol)), 1)
        last = self.market.price(info.symbol)
        for spec in specs if working is None else specs[:1]:
            self.check_new(spec, last)
        self.check_new_ids(specs[1:] if working is not None else [])
        if working is None:  # one lock for both OCO legs: the larger claim
            reserve = max((self.amount(s, last) for s in specs), key=lambda a: a[1])
        else:
            reserve = self.amount(working, last)
        lid = self._next_list
        lst = {"orderListId": lid, "contingencyType": contingency, "listStatusType": "EXEC_STARTED",
               "listOrderStatus": "EXECUTING", "listClientOrderId": list_cid, "transactionTime": now, "symbol": info.symbol,
               "legs": [], "working": None, "pair": []}
        first = self.open(specs[0], now, reserve=reserve, list_id=lid)
        self._next_list += 1
        self.lists[lid] = lst
        legs = [first] + [self.open(s, now, list_id=lid, pending=working is not None) for s in specs[1:]]
        lst["legs"] = [o["orderId"] for o in legs]
        lst["working"] = first["orderId"] if working is not None else None
        lst["pair"] = [o["orderId"] for o in legs] if working is None else [o["orderId"] for o in legs[1:]] if len(legs) == 3 else []
        self._emit(reports.list_status(lst, legs, now))
        resp = p.get("newOrderRespType") or "FULL"
        answers = [reports.order_reply(o, resp, now) for o in legs]  # pending legs as placed: PENDING_NEW (3.3)
        if working is not None:
            self.match(info, first, last, now, on_entry=True)
            answers[0] = reports.order_reply(first, resp, now)
        self.flush(now)
        return reports.list_wire(lst, legs, answers)

    # --- contingency (called by the engine) ---------------------------------------------------
    def legs_of(self, lst: dict) -> list[dict]:
        return [self.orders[i] for i in lst["legs"]]

    def _list_of(self, order: dict) -> dict | None:
        return self.lists.get(order["orderListId"])

    def release_for(self, order: dict) -> None:
        lst = self._list_of(order)
        for o in self.legs_of(lst) if lst else [order]:
            self.release(o)

    def _expire_siblings(self, order: dict, now: int) -> None:
        lst = self._list_of(order)
        if lst and order["orderId"] in lst["pair"]:
            for o in self.legs_of(lst):
                if o["orderId"] in lst["pair"] and o is not order and o["status"] in OPEN:
                    self.expire(o, now, "OCO_TRIGGER")

    def on_leg_triggered(self, order: dict, now: int) -> None:
        self._expire_siblings(order, now)

    def on_leg_filled(self, order: dict, now: int) -> None:
        lst = self._list_of(order)
        if lst is None:
            return
        if lst["working"] == order["orderId"]:
            self._release_pending(lst, now)
        self._expire_siblings(order, now)
        self._maybe_done(lst, now)

    def on_leg_done(self, order: dict, now: int) -> None:
        lst = self._list_of(order)
        if lst is None:
            return
        if lst["working"] == order["orderId"]:
            for o in self.legs_of(lst):
                if o["status"] == "PENDING_NEW":
                    self.expire(o, now, "OTO_PHASE_ONE_EXPIRED")
        self._maybe_done(lst, now)

    def _release_pending(self, lst: dict, now: int) -> None:
        pending = [o for o in self.legs_of(lst) if o["status"] == "PENDING_NEW"]
        last = self.market.price(lst["symbol"])
        try:
            pending[0]["reserved"] = self.lock(*max((self.amount(o, last) for o in pending), key=lambda a: a[1]))
        except FakeBinanceError:
            for o in pending:
                o.update(status="REJECTED", updateTime=now, expiryReason="REJECTED")
                self._report(o, "REJECTED", now)
            return
        for o in pending:
            self.activate(o, last, now)

    def _maybe_done(self, lst: dict, now: int) -> None:
        if lst["listOrderStatus"] != "ALL_DONE" and not any(o["status"] in LIVE for o in self.legs_of(lst)):
            self._finish(lst, now)

    def _finish(self, lst: dict, now: int) -> None:
        lst.update(listStatusType="ALL_DONE", listOrderStatus="ALL_DONE", transactionTime=now)
        self._emit(reports.list_status(lst, self.legs_of(lst), now))

    # --- cancel and queries -------------------------------------------------------------------
    def cancel_list_of(self, lst: dict, cancel_id: str | None, now: int) -> dict:
        answers = []
        for o in self.legs_of(lst):
            if o["status"] in LIVE:
                cid = cancel_id or f"cancel{now}x{o['orderId']}"
                self.cancel_one(o, cid, now)
                answers.append(reports.cancel_reply(o, cid, now))
            else:
                answers.append(reports.order_reply(o, "RESULT", now))
        self._finish(lst, now)
        self.flush(now)
        return reports.list_wire(lst, self.legs_of(lst), answers)

    def cancel_list(self, p: dict, now: int) -> dict:
        self.market.symbol(p.get("symbol"))
        lst = self._find_list(p, "listClientOrderId", CANCEL_REJECTED)
        if lst["listOrderStatus"] == "ALL_DONE" or lst["symbol"] != p["symbol"]:
            raise FakeBinanceError(400, CANCEL_REJECTED, MSG_NO_LIST)
        return self.cancel_list_of(lst, p.get("newClientOrderId"), now)

    def _find_list(self, p: dict, cid_name: str, code: int) -> dict:
        lid, cid = p.get("orderListId"), p.get(cid_name)
        if not lid and not cid:
            raise one_of("orderListId", cid_name)
        if lid:
            lst = self.lists.get(int(lid)) if lid.isdigit() else None
            if lst is not None and cid and lst["listClientOrderId"] != cid:
                raise FakeBinanceError(400, -2039, "Client order ID is not correct for this order ID.")
        else:
            lst = next((x for x in reversed(self.lists.values()) if x["listClientOrderId"] == cid), None)
        if lst is None:
            raise FakeBinanceError(400, code, MSG_NO_LIST)
        return lst

    def get_list(self, p: dict) -> dict:
        lst = self._find_list(p, "origClientOrderId", NO_SUCH_ORDER)
        return reports.list_wire(lst, self.legs_of(lst))

    def open_lists(self, symbol: str | None = None) -> list[dict]:
        return [x for x in self.lists.values() if x["listOrderStatus"] != "ALL_DONE" and symbol in (None, x["symbol"])]

    def open_lists_wire(self, p: dict) -> list[dict]:
        return [reports.list_wire(x, self.legs_of(x)) for x in self.open_lists()]

    def all_lists(self, p: dict) -> list[dict]:
        rows = list(self.lists.values())
        for key, keep in (("fromId", lambda x, v: x["orderListId"] >= int(v)),
                          ("startTime", lambda x, v: x["transactionTime"] >= int(v)),
                          ("endTime", lambda x, v: x["transactionTime"] <= int(v))):
            if p.get(key):
                rows = [x for x in rows if keep(x, p[key])]
        return [reports.list_wire(x, self.legs_of(x)) for x in rows[: min(int(p.get("limit") or 500), 1000)]]
