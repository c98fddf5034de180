"""The fake's account and matching engine: orders, balances and trades against the price feed (no I/O).

The price feed is a stream of trades (``on_price``): MARKET orders fill at once at the last price; LIMIT orders fill
at the last price when marketable, otherwise rest (GTC) or expire (IOC/FOK, with ``expiryReason``); LIMIT_MAKER is
refused when it would take. Stop orders (``triggers.py``) wait, untriggered (``workingTime`` -1), until a trade meets
their rule, then execute as MARKET (``STOP_LOSS``, ``TAKE_PROFIT``) or go on the book as LIMIT (``*_LIMIT``).
Order lists live in ``lists.py`` (mixed in). Every change is reported to ``listeners`` as user-data-stream events
(``executionReport``, ``listStatus``, then one ``outboundAccountPosition`` per action, same ``E``).
Commission: ``commission_bps`` of the received asset. A ``newClientOrderId`` is refused only while an order with that
id is open, as on Binance. The fake is a price taker: its orders never meet each other, so STP never fires (the
mode is validated and echoed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from tests.fake_binance import reports
from tests.fake_binance.errors import (
    CANCEL_REJECTED, ILLEGAL_CHARS, INVALID_ORDER_TYPE, INVALID_SIDE, INVALID_TIF, MSG_DUPLICATE, MSG_INSUFFICIENT,
    MSG_TRIGGER, MSG_UNKNOWN, MSG_WOULD_TAKE, NO_SUCH_ORDER, FakeBinanceError, mandatory, not_required, one_of, rejected,
)
from tests.fake_binance.lists import OrderLists
from tests.fake_binance.market import ORDER_TYPES, Market, SymbolInfo
from tests.fake_binance.rules import OPEN, check_counts, check_filters, check_gates, check_trading
from tests.fake_binance.triggers import STOP_TYPES, is_stop, on_trade, start_tracking, stop_condition

CLIENT_ID = re.compile(r"^[a-zA-Z0-9-_.:/]{1,36}$")
LIMIT_TYPES = ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
_Z = Decimal(0)
fmt = reports.fmt


def _dec(p: dict, name: str, names: dict) -> Decimal | None:
    v = p.get(name)
    if v in (None, ""):
        return None
    try:
        return Decimal(v)
    except InvalidOperation:
        raise FakeBinanceError(400, ILLEGAL_CHARS, f"Illegal characters found in parameter '{names.get(name, name)}'; "
                               "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.") from None


def parse_order(p: dict, names: dict | None = None) -> dict:
    """Request parameters -> an order spec; -1102/-1106/-1114/-1115/-1116/-1117 as Binance answers them.

    ``names`` maps a parameter to the name the request used (an order list's ``abovePrice`` for ``price``)."""
    names = names or {}
    side, type_, tif = p.get("side"), p.get("type"), p.get("timeInForce")
    for name, value in (("side", side), ("type", type_)):
        if value in (None, ""):
            raise mandatory(names.get(name, name))
    if side not in ("BUY", "SELL"):
        raise FakeBinanceError(400, INVALID_SIDE, "Invalid side.")
    if type_ not in ORDER_TYPES:
        raise FakeBinanceError(400, INVALID_ORDER_TYPE, "Invalid orderType.")
    stop_type, limit_type = type_ in STOP_TYPES, type_ in LIMIT_TYPES
    price, stop, qty, quote_qty = (_dec(p, n, names) for n in ("price", "stopPrice", "quantity", "quoteOrderQty"))
    delta = p.get("trailingDelta") or None
    for name, value, wanted in (("price", price, limit_type), ("stopPrice", stop, stop_type and delta is None),
                                ("timeInForce", tif, limit_type and type_ != "LIMIT_MAKER")):
        if wanted and value is None:
            raise mandatory(names.get(name, name))
    if type_ == "MARKET" and qty is None and quote_qty is None:
        raise one_of("quantity", "quoteOrderQty")
    if type_ != "MARKET" and qty is None:
        raise mandatory(names.get("quantity", "quantity"))
    for name, value, allowed in (("price", price, limit_type), ("stopPrice", stop, stop_type),
                                 ("trailingDelta", delta, stop_type), ("quoteOrderQty", quote_qty, type_ == "MARKET"),
                                 ("timeInForce", tif, limit_type and type_ != "LIMIT_MAKER")):
        if value is not None and not allowed:
            raise not_required(names.get(name, name))
    if tif is not None and tif not in ("GTC", "IOC", "FOK"):
        raise FakeBinanceError(400, INVALID_TIF, "Invalid timeInForce.")
    try:
        delta = None if delta is None else int(delta)
    except ValueError:
        raise mandatory(names.get("trailingDelta", "trailingDelta")) from None
    cid = p.get("newClientOrderId") or None
    if cid is not None and not CLIENT_ID.match(cid):
        raise FakeBinanceError(400, ILLEGAL_CHARS, f"Illegal characters found in parameter '{names.get('newClientOrderId', 'newClientOrderId')}'; "
                               "legal range is '^[a-zA-Z0-9-_]{1,36}$'.")
    return {"side": side, "type": type_, "timeInForce": tif or "GTC", "qty": qty, "price": price, "stop": stop,
            "trailingDelta": delta, "clientOrderId": cid, "quoteOrderQty": quote_qty, "stp": p.get("selfTradePreventionMode")}


class OrderEngine(OrderLists):
    def __init__(self, market: Market, commission_bps: Decimal = Decimal(10)) -> None:
        super().__init__()
        self.market = market
        self.commission_bps = commission_bps
        self.balances: dict[str, list[Decimal]] = {}  # asset -> [free, locked]
        self.orders: dict[int, dict] = {}
        self.trades: list[dict] = []
        self.listeners: list[Callable[[dict], None]] = []  # user-data-stream events, as they happen
        self._next_order, self._next_trade, self._next_exec = 1, 1, 1
        self._touched: set[str] = set()

    # --- balances and events ------------------------------------------------------------------
    def deposit(self, asset: str, amount: Decimal, now: int | None = None) -> None:
        """Credit ``asset``; with ``now`` it is a deposit seen on the user data stream (``balanceUpdate``)."""
        self._move(asset, Decimal(amount), _Z)
        if now is None:
            self._touched.discard(asset)  # a silent credit (test setup), not an account event
        else:
            self._emit(reports.balance_update(asset, Decimal(amount), now))
            self.flush(now)

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, [_Z, _Z])[0]

    def _move(self, asset: str, d_free: Decimal, d_locked: Decimal) -> None:
        bal = self.balances.setdefault(asset, [_Z, _Z])
        bal[0] += d_free
        bal[1] += d_locked
        self._touched.add(asset)

    def _emit(self, event: dict) -> None:
        for listener in list(self.listeners):
            listener(event)

    def _report(self, order: dict, x: str, now: int, trade: dict | None = None, cancel_id: str = "") -> None:
        self._emit(reports.execution_report(order, x, now, self._next_exec, trade, cancel_id))
        self._next_exec += 1

    def flush(self, now: int) -> None:
        """End of an action: one ``outboundAccountPosition`` for the assets it touched."""
        if self._touched:
            self._emit(reports.account_position(self.balances, self._touched, now))
            self._touched = set()

    # --- placing ------------------------------------------------------------------------------
    def spec(self, info: SymbolInfo, p: dict, names: dict | None = None) -> dict:
        """A validated order spec for ``info``: parameters, flags, filters (nothing placed, nothing locked)."""
        spec = {**parse_order(p, names), "symbol": info.symbol}
        spec["stp"] = spec["stp"] or info.default_stp
        if spec["qty"] is None:
            spec["qty"] = self._qty_for_quote(info, spec["quoteOrderQty"])
        check_gates(info, spec)
        check_filters(info, spec, self.market.price(info.symbol))
        return spec

    def place(self, p: dict, now: int, test: bool) -> dict:
        info = self.market.symbol(p.get("symbol"))
        check_trading(info)
        spec = self.spec(info, p)
        check_counts(info, self.open_for(info.symbol), [spec], len(self.open_lists(info.symbol)), 0)
        if test:
            return {}
        ref = self.market.price(info.symbol)
        self.check_new(spec, ref)
        order = self.open(spec, now, reserve=self.amount(spec, ref))
        self.match(info, order, ref, now, on_entry=True)
        self.flush(now)
        return reports.order_reply(order, p.get("newOrderRespType") or ("FULL" if order["type"] in ("MARKET", "LIMIT") else "ACK"), now)

    def check_new_ids(self, specs: list[dict]) -> None:
        """-2010 "Duplicate order sent." for a client order id in use by an open (or pending) order."""
        in_use = {o["clientOrderId"] for o in self.open_for(None, pending=True)}
        if any(s["clientOrderId"] in in_use for s in specs if s["clientOrderId"]):
            raise rejected(MSG_DUPLICATE)

    def check_new(self, spec: dict, ref: Decimal) -> None:
        """Duplicate id, immediate trigger, a LIMIT_MAKER that would take (-2010)."""
        self.check_new_ids([spec])
        if spec["stop"] is not None and stop_condition(spec, ref):
            raise rejected(MSG_TRIGGER)
        if spec["type"] == "LIMIT_MAKER" and (ref <= spec["price"] if spec["side"] == "BUY" else ref >= spec["price"]):
            raise rejected(MSG_WOULD_TAKE)

    def _qty_for_quote(self, info: SymbolInfo, quote_qty: Decimal) -> Decimal:
        step = Decimal((info.filter("LOT_SIZE") or {"stepSize": "0.00000001"})["stepSize"]) or Decimal("0.00000001")
        raw = quote_qty / self.market.price(info.symbol)
        return (raw / step).to_integral_value(rounding=ROUND_DOWN) * step

    def amount(self, spec: dict, ref: Decimal) -> tuple[str, Decimal]:
        """What the order may spend: quote for a BUY (at its limit, stop or the last price), base for a SELL."""
        info = self.market.symbol(spec["symbol"])
        if spec["side"] == "SELL":
            return info.base, spec["qty"]
        return info.quote, spec["qty"] * (spec["price"] or spec["stop"] or ref)

    def lock(self, asset: str, amount: Decimal) -> tuple[str, Decimal]:
        if self.free(asset) < amount:
            raise rejected(MSG_INSUFFICIENT)
        self._move(asset, -amount, amount)
        return asset, amount

    def release(self, order: dict) -> None:
        asset, amount = order.pop("reserved", (None, _Z))
        if asset is not None:
            self._move(asset, amount, -amount)

    def open(self, spec: dict, now: int, reserve: tuple[str, Decimal] | None = None, list_id: int = -1,
             pending: bool = False) -> dict:
        """Record an order (locking ``reserve`` first) and report it NEW (or PENDING_NEW)."""
        locked = self.lock(*reserve) if reserve else None
        oid = self._next_order
        self._next_order += 1
        order = {**spec, "orderId": oid, "clientOrderId": spec["clientOrderId"] or f"fake{oid:020d}", "orderListId": list_id,
                 "time": now, "updateTime": now, "status": "PENDING_NEW" if pending else "NEW", "executed": _Z, "cquote": _Z,
                 "fills": [], "triggered": False, "workingTime": -1, "onBook": False, "expiryReason": None,
                 "trailingTime": -1, "peak": None}
        if locked:
            order["reserved"] = locked
        self.orders[oid] = order
        if not pending:
            self.activate(order, self.market.price(spec["symbol"]), now, report=False)
        self._report(order, "NEW", now)
        return order

    def activate(self, order: dict, last: Decimal, now: int, report: bool = True) -> None:
        """A pending order goes to work: stops start waiting (``workingTime`` -1), the others are working."""
        order["status"] = "NEW"
        start_tracking(order, last, now)
        if not is_stop(order):
            order["workingTime"], order["onBook"] = now, order["type"] in LIMIT_TYPES
        if report:
            self._report(order, "NEW", now)

    # --- matching -----------------------------------------------------------------------------
    def on_price(self, symbol: str, price: Decimal, now: int) -> None:
        """One trade at ``price``: match the open orders of ``symbol`` (oldest first) against it."""
        info = self.market.symbol(symbol)
        for order in [o for o in self.orders.values() if o["symbol"] == symbol and o["status"] in OPEN]:
            if order["status"] in OPEN:
                self.match(info, order, price, now, on_entry=False)
        self.flush(now)

    def match(self, info: SymbolInfo, order: dict, price: Decimal, now: int, on_entry: bool) -> None:
        if is_stop(order) and not order["triggered"]:
            if not on_trade(order, price, now):
                return
            self._trigger(order, now)
        limit = order["price"] if order["type"] in LIMIT_TYPES else None
        if limit is None or (price <= limit if order["side"] == "BUY" else price >= limit):
            self._fill(info, order, price, now)
        elif on_entry and order["timeInForce"] in ("IOC", "FOK"):
            self.expire(order, now, "UNFILLED_IOC_QUANTITY_EXPIRED" if order["timeInForce"] == "IOC" else "UNFILLED_FOK_ORDER_EXPIRED")
        elif order["triggered"] and not order["onBook"]:
            order["onBook"] = True  # a triggered *_LIMIT goes on the book (reference 4.5, inferred event)
            self._report(order, "NEW", now)

    def _trigger(self, order: dict, now: int) -> None:
        order.update(triggered=True, workingTime=now, updateTime=now)
        self.on_leg_triggered(order, now)  # an OCO sibling is expired before the stop executes

    def _fill(self, info: SymbolInfo, order: dict, price: Decimal, now: int) -> None:
        self.release_for(order)
        qty, quote = order["qty"], order["qty"] * price
        got, gave, got_amt, gave_amt = (info.base, info.quote, qty, quote) if order["side"] == "BUY" else (info.quote, info.base, quote, qty)
        if self.free(gave) < gave_amt:
            self.expire(order, now, "REJECTED" if order["triggered"] else "INSUFFICIENT_LIQUIDITY")
            return
        commission = got_amt * self.commission_bps / Decimal(10_000)
        self._move(gave, -gave_amt, _Z)
        self._move(got, got_amt - commission, _Z)
        trade = {"symbol": info.symbol, "id": self._next_trade, "orderId": order["orderId"], "orderListId": order["orderListId"],
                 "price": fmt(price), "qty": fmt(qty), "quoteQty": fmt(quote), "commission": fmt(commission),
                 "commissionAsset": got, "time": now, "isBuyer": order["side"] == "BUY", "isMaker": False, "isBestMatch": True}
        self._next_trade += 1
        self.trades.append(trade)
        order["fills"].append({"price": trade["price"], "qty": trade["qty"], "commission": trade["commission"],
                               "commissionAsset": got, "tradeId": trade["id"]})
        order.update(status="FILLED", executed=qty, cquote=quote, updateTime=now, onBook=False)
        if order["workingTime"] == -1:
            order["workingTime"] = now
        self._report(order, "TRADE", now, trade)
        self.on_leg_filled(order, now)

    def expire(self, order: dict, now: int, reason: str) -> None:
        self.release(order)
        order.update(status="EXPIRED", updateTime=now, expiryReason=reason, onBook=False)
        self._report(order, "EXPIRED", now)
        self.on_leg_done(order, now)

    def cancel_one(self, order: dict, cancel_id: str, now: int) -> None:
        self.release(order)
        order.update(status="CANCELED", updateTime=now, onBook=False)
        self._report(order, "CANCELED", now, cancel_id=cancel_id)

    # --- requests -----------------------------------------------------------------------------
    def query(self, p: dict) -> dict:
        return reports.order_wire(self._find(p, NO_SUCH_ORDER, "Order does not exist."))

    def cancel(self, p: dict, now: int) -> dict:
        order = self._find(p, CANCEL_REJECTED, MSG_UNKNOWN)
        if order["status"] not in (*OPEN, "PENDING_NEW"):
            raise FakeBinanceError(400, CANCEL_REJECTED, MSG_UNKNOWN)
        cancel_id = p.get("newClientOrderId") or f"cancel{now}x{order['orderId']}"
        if order["orderListId"] != -1:  # canceling a leg cancels its list; the answer is list-shaped
            return self.cancel_list_of(self.lists[order["orderListId"]], p.get("newClientOrderId"), now)
        self.cancel_one(order, cancel_id, now)
        self.flush(now)
        return reports.cancel_reply(order, cancel_id, now)

    def cancel_open(self, p: dict, now: int) -> list[dict]:
        """``DELETE /api/v3/openOrders``: every open order of the symbol; list legs answered as their list."""
        info = self.market.symbol(p.get("symbol"))
        answers, done_lists = [], set()
        for order in self.open_for(info.symbol, pending=True):
            if order["orderListId"] == -1:
                cancel_id = f"cancel{now}x{order['orderId']}"
                self.cancel_one(order, cancel_id, now)
                answers.append(reports.cancel_reply(order, cancel_id, now))
            elif order["orderListId"] not in done_lists:
                done_lists.add(order["orderListId"])
                answers.append(self.cancel_list_of(self.lists[order["orderListId"]], None, now))
        if not answers:
            raise FakeBinanceError(400, CANCEL_REJECTED, MSG_UNKNOWN)
        self.flush(now)
        return answers

    def _find(self, p: dict, code: int, msg: str) -> dict:
        self.market.symbol(p.get("symbol"))
        oid, cid = p.get("orderId"), p.get("origClientOrderId")
        if not oid and not cid:
            raise one_of("origClientOrderId", "orderId")
        matches = [o for o in self.orders.values() if o["symbol"] == p["symbol"]
                   and (not oid or str(o["orderId"]) == oid) and (not cid or o["clientOrderId"] == cid)]
        if not matches:
            raise FakeBinanceError(400, code, msg)
        return matches[-1]

    def open_for(self, symbol: str | None, pending: bool = False) -> list[dict]:
        states = (*OPEN, "PENDING_NEW") if pending else OPEN
        return [o for o in self.orders.values() if o["status"] in states and symbol in (None, o["symbol"])]

    def open_orders(self, symbol: str | None) -> list[dict]:
        if symbol:
            self.market.symbol(symbol)
        return [reports.order_wire(o) for o in self.open_for(symbol)]

    def account(self, now: int) -> dict:
        return {"makerCommission": int(self.commission_bps), "takerCommission": int(self.commission_bps),
                "buyerCommission": 0, "sellerCommission": 0, "canTrade": True, "canWithdraw": True, "canDeposit": True,
                "brokered": False, "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now,
                "accountType": "SPOT", "permissions": ["SPOT"], "uid": 1,
                "balances": [{"asset": a, "free": fmt(f), "locked": fmt(lk)} for a, (f, lk) in sorted(self.balances.items())]}

    def my_trades(self, p: dict) -> list[dict]:
        self.market.symbol(p.get("symbol"))
        rows = [t for t in self.trades if t["symbol"] == p["symbol"]]
        for key, keep in (("orderId", lambda t, v: str(t["orderId"]) == v), ("fromId", lambda t, v: t["id"] >= int(v)),
                          ("startTime", lambda t, v: t["time"] >= int(v)), ("endTime", lambda t, v: t["time"] <= int(v))):
            if p.get(key):
                rows = [t for t in rows if keep(t, p[key])]
        return rows[: min(int(p.get("limit") or 500), 1000)]
