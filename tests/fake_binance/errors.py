"""Binance error codes and messages served by the fake (reference section 5.2)."""

from __future__ import annotations

TOO_MANY_REQUESTS = -1003
TIMEOUT = -1007
INVALID_MESSAGE = -1013
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
ILLEGAL_CHARS = -1100
MANDATORY_PARAM = -1102
INVALID_TIF, INVALID_ORDER_TYPE, INVALID_SIDE = -1115, -1116, -1117
BAD_INTERVAL = -1120
BAD_SYMBOL = -1121
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
REJECTED_MBX_KEY = -2015

MSG_AHEAD = "Timestamp for this request was 1000ms ahead of the server's time."
MSG_OUTSIDE = "Timestamp for this request is outside of the recvWindow."
MSG_BAD_KEY = "Invalid API-key, IP, or permissions for action."
MSG_BAD_SIGNATURE = "Signature for this request is not valid."
MSG_TIMEOUT = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."
MSG_DUPLICATE = "Duplicate order sent."
MSG_INSUFFICIENT = "Account has insufficient balance for requested action."
MSG_TRIGGER = "Order would trigger immediately."


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
