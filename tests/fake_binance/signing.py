"""Signed-request checks of the fake (spot reference 4.2 and 4.4; binance-protective-orders.md 5): API key,
HMAC-SHA256, timestamp window.

REST (since 2026-01-15): the signature is verified over the **percent-encoded** payload -- query string
concatenated with the body as received, with any byte outside printable ASCII percent-encoded (UTF-8) first. A
client that signs the unencoded UTF-8 text of a non-ASCII value gets -1022. WebSocket API: the params minus
``signature``, sorted by name, ``k=v`` joined by ``&``, UTF-8, **not** percent-encoded.

Timing: ``timestamp`` in ms or µs; ``recvWindow`` default 5000, up to 60000, at most 3 decimals (µs); refused when
``timestamp >= serverTime + 1 s`` or ``serverTime - timestamp > recvWindow`` (-1021). The check runs under the
state lock right before the engine acts, so it is also the "re-check before the engine".
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from tests.fake_binance.errors import (
    BAD_PRECISION, INVALID_SIGNATURE, INVALID_TIMESTAMP, MANDATORY_PARAM, MSG_AHEAD, MSG_BAD_KEY, MSG_BAD_SIGNATURE,
    MSG_OUTSIDE, REJECTED_MBX_KEY, FakeBinanceError, mandatory,
)

MAX_RECV_WINDOW = 60_000
_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))


def percent_encoded(raw: str) -> str:
    """``raw`` with every character outside printable ASCII percent-encoded as UTF-8 (what Binance signs over)."""
    return quote(raw, safe=_ASCII)


def ws_payload(params: dict) -> str:
    """The WebSocket API's signed text: params minus ``signature``, sorted, ``k=v&...``, not percent-encoded."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_payload(raw_query: str, raw_body: str) -> tuple[str, str | None]:
    """The signed payload (query ‖ body, ``signature`` pair removed) and the signature sent."""
    signature, parts = None, []
    for raw in (raw_query, raw_body):
        kept = []
        for pair in raw.split("&") if raw else []:
            if pair.startswith("signature="):
                signature = pair[len("signature="):]
            else:
                kept.append(pair)
        parts.append(percent_encoded("&".join(kept)))
    return "".join(parts), signature


def check_signed(keys: dict[str, str], api_key: str | None, raw_query: str, raw_body: str, params: dict, now_ms: int) -> None:
    """Raise the Binance error a real server would answer for this signed request, if any."""
    if not api_key or api_key not in keys:
        raise FakeBinanceError(401, REJECTED_MBX_KEY, MSG_BAD_KEY)
    payload, signature = signed_payload(raw_query, raw_body)
    if signature is None:
        raise mandatory("signature")
    if not hmac.compare_digest(sign(keys[api_key], payload), signature.lower()):
        raise FakeBinanceError(400, INVALID_SIGNATURE, MSG_BAD_SIGNATURE)
    check_timestamp(params, now_ms)


def check_ws_signed(keys: dict[str, str], params: dict, now_ms: int) -> str:
    """A signed WebSocket API request (``userDataStream.subscribe.signature``); the API key it was signed with."""
    api_key, signature = params.get("apiKey"), params.get("signature")
    if not api_key or api_key not in keys:
        raise FakeBinanceError(401, REJECTED_MBX_KEY, MSG_BAD_KEY)
    if not signature:
        raise mandatory("signature")
    if not hmac.compare_digest(sign(keys[api_key], ws_payload(params)), str(signature).lower()):
        raise FakeBinanceError(400, INVALID_SIGNATURE, MSG_BAD_SIGNATURE)
    check_timestamp(params, now_ms)
    return api_key


def check_timestamp(params: dict, now_ms: int) -> None:
    try:
        ts_us = int(params["timestamp"])
        ts_us = ts_us if ts_us > 10**14 else ts_us * 1000  # ms or µs
    except (KeyError, ValueError):
        raise mandatory("timestamp") from None
    try:
        window = Decimal(str(params.get("recvWindow", "5000")))
    except InvalidOperation:
        raise mandatory("recvWindow") from None
    if window.as_tuple().exponent < -3:
        raise FakeBinanceError(400, BAD_PRECISION, "Parameter 'recvWindow' has too much precision.")
    if window > MAX_RECV_WINDOW:
        raise FakeBinanceError(400, MANDATORY_PARAM, f"'recvWindow' contains unexpected value. Cannot be greater than {MAX_RECV_WINDOW}.")
    if window <= 0:
        raise mandatory("recvWindow")
    now_us = now_ms * 1000
    if ts_us >= now_us + 1_000_000:
        raise FakeBinanceError(400, INVALID_TIMESTAMP, MSG_AHEAD)
    if now_us - ts_us > window * 1000:
        raise FakeBinanceError(400, INVALID_TIMESTAMP, MSG_OUTSIDE)
