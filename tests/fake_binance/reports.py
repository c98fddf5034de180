"""Wire shapes of the fake: order replies and queries (spot reference 3.4-3.6), order lists
(binance-protective-orders.md 3.1) and user-data-stream events (4.3, 4.6). Pure functions of the engine's dicts."""

from __future__ import annotations

from decimal import Decimal

_Z = Decimal(0)
RESULT_KEYS = ("price", "origQty", "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status", "timeInForce",
               "type", "side", "workingTime", "selfTradePreventionMode")


def fmt(v: Decimal | None) -> str:
    return f"{(v or _Z):.8f}"


def _conditional(o: dict) -> dict:
    out = {}
    if o["stop"] is not None:
        out["stopPrice"] = fmt(o["stop"])
    if o.get("trailingDelta") is not None:
        out.update(trailingDelta=o["trailingDelta"], trailingTime=o["trailingTime"])
    if o.get("expiryReason"):
        out["expiryReason"] = o["expiryReason"]
    return out


def order_wire(o: dict) -> dict:
    """``GET /api/v3/order`` shape."""
    return {"symbol": o["symbol"], "orderId": o["orderId"], "orderListId": o["orderListId"], "clientOrderId": o["clientOrderId"],
            "price": fmt(o["price"]), "origQty": fmt(o["qty"]), "executedQty": fmt(o["executed"]),
            "cummulativeQuoteQty": fmt(o["cquote"]), "status": o["status"], "timeInForce": o["timeInForce"],
            "type": o["type"], "side": o["side"], "stopPrice": fmt(o["stop"]), "icebergQty": fmt(_Z),
            "time": o["time"], "updateTime": o["updateTime"], "isWorking": o["workingTime"] != -1,
            "workingTime": o["workingTime"], "origQuoteOrderQty": fmt(o["quoteOrderQty"]),
            "selfTradePreventionMode": o["stp"], **_conditional(o)}


def order_reply(o: dict, resp_type: str, now: int) -> dict:
    """``POST /api/v3/order`` answer: ACK, RESULT or FULL."""
    ack = {"symbol": o["symbol"], "orderId": o["orderId"], "orderListId": o["orderListId"], "clientOrderId": o["clientOrderId"],
           "transactTime": now}
    if resp_type == "ACK":
        return ack
    wire = order_wire(o)
    result = {**ack, **{k: wire[k] for k in RESULT_KEYS}, **_conditional(o)}
    return result if resp_type == "RESULT" else {**result, "fills": list(o["fills"])}


def cancel_reply(o: dict, cancel_id: str, now: int) -> dict:
    """``DELETE /api/v3/order`` answer for one order: ``clientOrderId`` is the cancel's id."""
    wire = order_wire(o)
    return {"symbol": o["symbol"], "origClientOrderId": o["clientOrderId"], "orderId": o["orderId"],
            "orderListId": o["orderListId"], "clientOrderId": cancel_id, "transactTime": now,
            **{k: wire[k] for k in RESULT_KEYS if k != "workingTime"}, **_conditional(o)}


def list_wire(lst: dict, legs: list[dict], reports: list[dict] | None = None) -> dict:
    """An order list; ``reports`` (order replies) only where the endpoint answers them."""
    out = {"orderListId": lst["orderListId"], "contingencyType": lst["contingencyType"], "listStatusType": lst["listStatusType"],
           "listOrderStatus": lst["listOrderStatus"], "listClientOrderId": lst["listClientOrderId"],
           "transactionTime": lst["transactionTime"], "symbol": lst["symbol"],
           "orders": [{"symbol": o["symbol"], "orderId": o["orderId"], "clientOrderId": o["clientOrderId"]} for o in legs]}
    if reports is not None:
        out["orderReports"] = reports
    return out


def execution_report(o: dict, x: str, now: int, exec_id: int, trade: dict | None = None, cancel_id: str = "") -> dict:
    """``executionReport`` (reference 4.3); ``trade`` is the fake's trade row of an ``x=TRADE`` event."""
    last_qty, last_price = (Decimal(trade["qty"]), Decimal(trade["price"])) if trade else (_Z, _Z)
    ev = {"e": "executionReport", "E": now, "s": o["symbol"], "c": cancel_id or o["clientOrderId"], "S": o["side"],
          "o": o["type"], "f": o["timeInForce"], "q": fmt(o["qty"]), "p": fmt(o["price"]), "P": fmt(o["stop"]),
          "F": fmt(_Z), "g": o["orderListId"], "C": o["clientOrderId"] if cancel_id else "", "x": x, "X": o["status"],
          "r": "NONE", "i": o["orderId"], "l": fmt(last_qty), "z": fmt(o["executed"]), "L": fmt(last_price),
          "n": trade["commission"] if trade else "0", "N": trade["commissionAsset"] if trade else None,
          "T": now, "t": trade["id"] if trade else -1, "I": exec_id, "w": o["onBook"], "m": bool(trade and trade["isMaker"]),
          "M": bool(trade), "O": o["time"], "Z": fmt(o["cquote"]), "Y": fmt(last_qty * last_price),
          "Q": fmt(o["quoteOrderQty"]), "V": o["stp"]}
    if o["workingTime"] != -1:
        ev["W"] = o["workingTime"]
    if o.get("trailingDelta") is not None:
        ev.update(d=o["trailingDelta"], D=o["trailingTime"])
    if o.get("expiryReason"):
        ev["eR"] = o["expiryReason"]
    return ev


def list_status(lst: dict, legs: list[dict], now: int) -> dict:
    """``listStatus`` (4.6): ``c`` is the contingency type and ``C`` the list client id here."""
    return {"e": "listStatus", "E": now, "s": lst["symbol"], "g": lst["orderListId"], "c": lst["contingencyType"],
            "l": lst["listStatusType"], "L": lst["listOrderStatus"], "r": "NONE", "C": lst["listClientOrderId"], "T": now,
            "O": [{"s": o["symbol"], "i": o["orderId"], "c": o["clientOrderId"]} for o in legs]}


def account_position(balances: dict[str, list[Decimal]], assets: set[str], now: int) -> dict:
    return {"e": "outboundAccountPosition", "E": now, "u": now,
            "B": [{"a": a, "f": fmt(balances[a][0]), "l": fmt(balances[a][1])} for a in sorted(assets) if a in balances]}


def balance_update(asset: str, delta: Decimal, now: int) -> dict:
    return {"e": "balanceUpdate", "E": now, "a": asset, "d": fmt(delta), "T": now}
