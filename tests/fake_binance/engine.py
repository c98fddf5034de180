"""The fake's account and matching engine: orders, balances and trades against the price feed (no I/O).

MARKET orders fill at once at the current price. LIMIT orders fill at the current price when
marketable, otherwise rest (GTC) or expire (IOC/FOK); resting LIMIT and STOP_LOSS orders are matched
whenever the price moves (``on_price``). Commission: ``commission_bps`` of the received asset.
A ``newClientOrderId`` is rejected only while an order with that id is open, as on Binance.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from tests.fake_binance.errors import (
    CANCEL_REJECTED, ILLEGAL_CHARS, INVALID_ORDER_TYPE, INVALID_SIDE, INVALID_TIF, MSG_DUPLICATE, MSG_INSUFFICIENT,
    MSG_TRIGGER, NEW_ORDER_REJECTED, NO_SUCH_ORDER, FakeBinanceError, filter_failure, mandatory, one_of,
)
from tests.fake_binance.market import Market, SymbolInfo

CLIENT_ID = re.compile(r"^[a-zA-Z0-9-_.:/]{1,36}$")
TYPES = ("LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER")
OPEN = ("NEW", "PARTIALLY_FILLED")
_Z = Decimal(0)


def fmt(v: Decimal) -> str:
    return f"{v:.8f}"


def _dec(p: dict, name: str, required: bool = False) -> Decimal | None:
    v = p.get(name)
    if v in (None, ""):
        if required:
            raise mandatory(name)
        return None
    try:
        return Decimal(v)
    except InvalidOperation:
        raise FakeBinanceError(400, ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'; "
                               "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.") from None


def check_filters(info: SymbolInfo, type_: str, qty: Decimal, price: Decimal | None, stop: Decimal | None, ref_price: Decimal) -> None:
    """Raise -1013 ``Filter failure: NAME`` for the first filter the order breaks."""
    pf = info.filter("PRICE_FILTER")
    for p in (price, stop):
        if pf and p is not None:
            lo, hi, tick = (Decimal(pf[k]) for k in ("minPrice", "maxPrice", "tickSize"))
            if (lo and p < lo) or (hi and p > hi) or (tick and p % tick != 0):
                raise filter_failure("PRICE_FILTER")
    lot_names = ("LOT_SIZE", "MARKET_LOT_SIZE") if type_ == "MARKET" else ("LOT_SIZE",)
    for name in lot_names:
        f = info.filter(name)
        if f:
            lo, hi, step = (Decimal(f[k]) for k in ("minQty", "maxQty", "stepSize"))
            if (lo and qty < lo) or (hi and qty > hi) or (step and qty % step != 0):
                raise filter_failure(name)
    notional = qty * (ref_price if type_ == "MARKET" or price is None else price)
    f = info.filter("NOTIONAL")
    if f:
        if (type_ != "MARKET" or f.get("applyMinToMarket", True)) and notional < Decimal(f["minNotional"]):
            raise filter_failure("NOTIONAL")
        if (type_ != "MARKET" or f.get("applyMaxToMarket", False)) and notional > Decimal(f["maxNotional"]):
            raise filter_failure("NOTIONAL")
    f = info.filter("MIN_NOTIONAL")
    if f and (type_ != "MARKET" or f.get("applyToMarket", True)) and notional < Decimal(f["minNotional"]):
        raise filter_failure("MIN_NOTIONAL")


class OrderEngine:
    def __init__(self, market: Market, commission_bps: Decimal = Decimal(10)) -> None:
        self.market = market
        self.commission_bps = commission_bps
        self.balances: dict[str, list[Decimal]] = {}  # asset -> [free, locked]
        self.orders: dict[int, dict] = {}
        self.trades: list[dict] = []
        self._next_order, self._next_trade = 1, 1

    def deposit(self, asset: str, amount: Decimal) -> None:
        self.balances.setdefault(asset, [_Z, _Z])[0] += Decimal(amount)

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, [_Z, _Z])[0]

    # --- requests -------------------------------------------------------------------------------
    def place(self, p: dict, now: int, test: bool) -> dict:
        info = self.market.symbol(p.get("symbol"))
        order = self._validate(info, p)
        ref = self.market.price(info.symbol)
        check_filters(info, order["type"], order["qty"], order["price"], order["stop"], ref)
        if test:
            return {}
        cid = order["clientOrderId"]
        if any(o["clientOrderId"] == cid and o["status"] in OPEN for o in self.orders.values()):
            raise FakeBinanceError(400, NEW_ORDER_REJECTED, MSG_DUPLICATE)
        self._check_trigger(order, ref)
        self._reserve(info, order, ref)
        order.update(orderId=self._next_order, time=now, updateTime=now, status="NEW", executed=_Z, cquote=_Z, fills=[])
        self._next_order += 1
        self.orders[order["orderId"]] = order
        self._match(info, order, ref, now, on_entry=True)
        return self._response(order, p.get("newOrderRespType") or ("FULL" if order["type"] in ("MARKET", "LIMIT") else "ACK"), now)

    def _validate(self, info: SymbolInfo, p: dict) -> dict:
        side, type_ = p.get("side"), p.get("type")
        if side is None:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise FakeBinanceError(400, INVALID_SIDE, "Invalid side.")
        if type_ is None:
            raise mandatory("type")
        if type_ not in TYPES:
            raise FakeBinanceError(400, INVALID_ORDER_TYPE, "Invalid orderType.")
        tif = p.get("timeInForce")
        if type_ in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT") and tif is None:
            raise mandatory("timeInForce")
        if tif is not None and tif not in ("GTC", "IOC", "FOK"):
            raise FakeBinanceError(400, INVALID_TIF, "Invalid timeInForce.")
        price = _dec(p, "price", required=type_ in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER"))
        stop = _dec(p, "stopPrice", required=type_ in ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"))
        qty, quote_qty = _dec(p, "quantity"), _dec(p, "quoteOrderQty")
        if type_ == "MARKET" and qty is None and quote_qty is None:
            raise one_of("quantity", "quoteOrderQty")
        if qty is None and quote_qty is None:
            raise mandatory("quantity")
        if qty is None:
            qty = self._qty_for_quote(info, quote_qty)
        cid = p.get("newClientOrderId") or f"fake{self._next_order:020d}"
        if not CLIENT_ID.match(cid):
            raise FakeBinanceError(400, ILLEGAL_CHARS, "Illegal characters found in parameter 'newClientOrderId'; "
                                   "legal range is '^[a-zA-Z0-9-_]{1,36}$'.")
        return {"symbol": info.symbol, "side": side, "type": type_, "timeInForce": tif or "GTC", "qty": qty,
                "price": price, "stop": stop, "clientOrderId": cid, "quoteOrderQty": quote_qty}

    def _qty_for_quote(self, info: SymbolInfo, quote_qty: Decimal) -> Decimal:
        step = Decimal((info.filter("LOT_SIZE") or {"stepSize": "0.00000001"})["stepSize"]) or Decimal("0.00000001")
        raw = quote_qty / self.market.price(info.symbol)
        return (raw / step).to_integral_value(rounding=ROUND_DOWN) * step

    def _check_trigger(self, order: dict, ref: Decimal) -> None:
        if order["stop"] is None:
            return
        if self._triggered(order, ref):
            raise FakeBinanceError(400, NEW_ORDER_REJECTED, MSG_TRIGGER)

    @staticmethod
    def _triggered(order: dict, price: Decimal) -> bool:
        stop_loss = order["type"].startswith("STOP_LOSS")
        above = (order["side"] == "BUY") == stop_loss  # STOP_LOSS BUY and TAKE_PROFIT SELL trigger from above
        return price >= order["stop"] if above else price <= order["stop"]

    def _reserve(self, info: SymbolInfo, order: dict, ref: Decimal) -> None:
        """Lock what the order may spend; -2010 insufficient balance when it is not there."""
        if order["side"] == "BUY":
            asset, amount = info.quote, order["qty"] * (order["price"] if order["price"] is not None else ref)
        else:
            asset, amount = info.base, order["qty"]
        bal = self.balances.setdefault(asset, [_Z, _Z])
        if bal[0] < amount:
            raise FakeBinanceError(400, NEW_ORDER_REJECTED, MSG_INSUFFICIENT)
        bal[0] -= amount
        bal[1] += amount
        order["reserved"] = (asset, amount)

    def _release(self, order: dict) -> None:
        asset, amount = order.pop("reserved", (None, _Z))
        if asset is not None:
            self.balances[asset][0] += amount
            self.balances[asset][1] -= amount

    def _match(self, info: SymbolInfo, order: dict, price: Decimal, now: int, on_entry: bool) -> None:
        type_, side = order["type"], order["side"]
        if order["stop"] is not None and not order.get("triggered"):
            if not self._triggered(order, price):
                return
            order["triggered"] = True
        limit = order["price"] if type_ not in ("MARKET", "STOP_LOSS", "TAKE_PROFIT") else None
        marketable = limit is None or (price <= limit if side == "BUY" else price >= limit)
        if marketable:
            self._fill(info, order, price, now)
        elif on_entry and order["timeInForce"] in ("IOC", "FOK"):
            self._release(order)
            order.update(status="EXPIRED", updateTime=now)

    def _fill(self, info: SymbolInfo, order: dict, price: Decimal, now: int) -> None:
        self._release(order)
        qty, quote = order["qty"], order["qty"] * price
        got, gave, got_amt, gave_amt = (info.base, info.quote, qty, quote) if order["side"] == "BUY" else (info.quote, info.base, quote, qty)
        commission = got_amt * self.commission_bps / Decimal(10_000)
        if self.free(gave) < gave_amt:
            order.update(status="EXPIRED", updateTime=now)
            return
        self.balances[gave][0] -= gave_amt
        self.deposit(got, got_amt - commission)
        trade = {"symbol": info.symbol, "id": self._next_trade, "orderId": order["orderId"], "orderListId": -1,
                 "price": fmt(price), "qty": fmt(qty), "quoteQty": fmt(quote), "commission": fmt(commission),
                 "commissionAsset": got, "time": now, "isBuyer": order["side"] == "BUY", "isMaker": False, "isBestMatch": True}
        self._next_trade += 1
        self.trades.append(trade)
        order["fills"].append({"price": trade["price"], "qty": trade["qty"], "commission": trade["commission"],
                               "commissionAsset": got, "tradeId": trade["id"]})
        order.update(status="FILLED", executed=qty, cquote=quote, updateTime=now)

    def on_price(self, symbol: str, price: Decimal, now: int) -> None:
        """Match resting orders of ``symbol`` against a new price."""
        info = self.market.symbol(symbol)
        for order in list(self.orders.values()):
            if order["symbol"] == symbol and order["status"] in OPEN:
                self._match(info, order, price, now, on_entry=False)

    def query(self, p: dict) -> dict:
        return self._order_wire(self._find(p, NO_SUCH_ORDER, "Order does not exist."))

    def cancel(self, p: dict, now: int) -> dict:
        order = self._find(p, CANCEL_REJECTED, "Unknown order sent.")
        if order["status"] not in OPEN:
            raise FakeBinanceError(400, CANCEL_REJECTED, "Unknown order sent.")
        self._release(order)
        order.update(status="CANCELED", updateTime=now)
        wire = self._order_wire(order)
        return {**wire, "origClientOrderId": order["clientOrderId"], "clientOrderId": p.get("newClientOrderId") or f"cancel{now}",
                "transactTime": now}

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

    def open_orders(self, symbol: str | None) -> list[dict]:
        if symbol:
            self.market.symbol(symbol)
        return [self._order_wire(o) for o in self.orders.values() if o["status"] in OPEN and symbol in (None, o["symbol"])]

    def account(self, now: int) -> dict:
        return {"makerCommission": int(self.commission_bps), "takerCommission": int(self.commission_bps),
                "buyerCommission": 0, "sellerCommission": 0, "canTrade": True, "canWithdraw": True, "canDeposit": True,
                "brokered": False, "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now,
                "accountType": "SPOT", "permissions": ["SPOT"], "uid": 1,
                "balances": [{"asset": a, "free": fmt(f), "locked": fmt(lk)} for a, (f, lk) in sorted(self.balances.items())]}

    def my_trades(self, p: dict) -> list[dict]:
        self.market.symbol(p.get("symbol"))
        rows = [t for t in self.trades if t["symbol"] == p["symbol"]]
        if p.get("orderId"):
            rows = [t for t in rows if str(t["orderId"]) == p["orderId"]]
        if p.get("fromId"):
            rows = [t for t in rows if t["id"] >= int(p["fromId"])]
        if p.get("startTime"):
            rows = [t for t in rows if t["time"] >= int(p["startTime"])]
        if p.get("endTime"):
            rows = [t for t in rows if t["time"] <= int(p["endTime"])]
        return rows[: min(int(p.get("limit") or 500), 1000)]

    # --- wire shapes ----------------------------------------------------------------------------
    def _order_wire(self, o: dict) -> dict:
        out = {"symbol": o["symbol"], "orderId": o["orderId"], "orderListId": -1, "clientOrderId": o["clientOrderId"],
               "price": fmt(o["price"] or _Z), "origQty": fmt(o["qty"]), "executedQty": fmt(o["executed"]),
               "cummulativeQuoteQty": fmt(o["cquote"]), "status": o["status"], "timeInForce": o["timeInForce"],
               "type": o["type"], "side": o["side"], "stopPrice": fmt(o["stop"] or _Z), "icebergQty": fmt(_Z),
               "time": o["time"], "updateTime": o["updateTime"], "isWorking": o["status"] in OPEN,
               "workingTime": o["time"], "origQuoteOrderQty": fmt(o["quoteOrderQty"] or _Z), "selfTradePreventionMode": "NONE"}
        return out

    def _response(self, o: dict, resp_type: str, now: int) -> dict:
        ack = {"symbol": o["symbol"], "orderId": o["orderId"], "orderListId": -1, "clientOrderId": o["clientOrderId"],
               "transactTime": now}
        if resp_type == "ACK":
            return ack
        wire = self._order_wire(o)
        result = {**ack, **{k: wire[k] for k in ("price", "origQty", "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty",
                                                 "status", "timeInForce", "type", "side", "selfTradePreventionMode")},
                  "workingTime": now}
        return result if resp_type == "RESULT" else {**result, "fills": list(o["fills"])}
