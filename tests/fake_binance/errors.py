"""Binance error codes and messages served by the fake (reference section 5.2)."""

from __future__ import annotations

TOO_MANY_REQUESTS = -1003
TIMEOUT = -1007
INVALID_MESSAGE = -1013
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
ILLEGAL_CHARS = -1100
MANDATORY_PARAM = -1102
PARAM_NOT_REQUIRED = -1106
BAD_PRECISION = -1111
TIF_NOT_REQUIRED = -1114
INVALID_TIF, INVALID_ORDER_TYPE, INVALID_SIDE = -1115, -1116, -1117
BAD_INTERVAL = -1120
BAD_SYMBOL = -1121
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
REJECTED_MBX_KEY = -2015
SUBSCRIPTION_ACTIVE, SUBSCRIPTION_INACTIVE = -2035, -2036
# order lists (binance-protective-orders.md 3.2; texts from binance-spot-api-docs errors.md)
OCO_TYPE_REJECTED, OCO_ICEBERG_TIF = -1158, -1160
OCO_PLACEMENT = {  # (side, leg kind) -> the code and text when that leg is on the wrong side
    ("BUY", "LIMIT"): (-1165, "A limit order in a buy OCO must be below."),
    ("SELL", "LIMIT"): (-1166, "A limit order in a sell OCO must be above."),
    ("BUY", "STOP"): (-1196, "A stop loss order in a buy OCO must be above."),
    ("SELL", "STOP"): (-1197, "A stop loss order in a sell OCO must be below."),
    ("BUY", "TAKE_PROFIT"): (-1198, "A take profit order in a buy OCO must be below."),
    ("SELL", "TAKE_PROFIT"): (-1199, "A take profit order in a sell OCO must be above."),
}
OCO_CONTINGENT = -1168

MSG_AHEAD = "Timestamp for this request was 1000ms ahead of the server's time."
MSG_OUTSIDE = "Timestamp for this request is outside of the recvWindow."
MSG_BAD_KEY = "Invalid API-key, IP, or permissions for action."
MSG_BAD_SIGNATURE = "Signature for this request is not valid."
MSG_TIMEOUT = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
MSG_DUPLICATE = "Duplicate order sent."
MSG_INSUFFICIENT = "Account has insufficient balance for requested action."
MSG_TRIGGER = "Order would trigger immediately."
MSG_WOULD_TAKE = "Order would immediately match and take."
MSG_CLOSED = "Market is closed."
MSG_UNKNOWN = "Unknown order sent."
MSG_OCO_PRICES = "The relationship of the prices for the orders is not correct."
MSG_OCO_NOT_SUPPORTED = "OCO orders are not supported for this symbol"
MSG_OTO_NOT_SUPPORTED = "OTO orders are not supported for this symbol."
MSG_TRAILING_NOT_SUPPORTED = "Trailing stop orders are not supported for this symbol."
MSG_STP_NOT_ALLOWED = "This symbol does not allow the specified self-trade prevention mode."
MSG_NO_LIST = "Order list does not exist."


def weight_message(limit: int) -> str:
    return (f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.")


class FakeBinanceError(Exception):
    """An error answer: HTTP status and the ``{"code", "msg"}`` body."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status, self.code, self.msg = status, code, msg
        self.headers = headers or {}

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> FakeBinanceError:
    return FakeBinanceError(400, MANDATORY_PARAM, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def one_of(a: str, b: str) -> FakeBinanceError:
    return FakeBinanceError(400, MANDATORY_PARAM, f"Param '{a}' or '{b}' must be sent, but both were empty/null!")


def filter_failure(name: str) -> FakeBinanceError:
    return FakeBinanceError(400, INVALID_MESSAGE, f"Filter failure: {name}")


def rejected(msg: str) -> FakeBinanceError:
    """-2010 NEW_ORDER_REJECTED with the matching engine's text."""
    return FakeBinanceError(400, NEW_ORDER_REJECTED, msg)


def not_required(name: str) -> FakeBinanceError:
    if name == "timeInForce":
        return FakeBinanceError(400, TIF_NOT_REQUIRED, "TimeInForce parameter sent when not required.")
    return FakeBinanceError(400, PARAM_NOT_REQUIRED, f"Parameter '{name}' sent when not required.")
