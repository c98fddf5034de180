"""Signed-request checks of the fake (reference 4.2 and 4.4): API key, HMAC-SHA256, timestamp window."""

from __future__ import annotations

import hashlib
import hmac

from tests.fake_binance.errors import (
    INVALID_SIGNATURE, INVALID_TIMESTAMP, MSG_AHEAD, MSG_BAD_KEY, MSG_BAD_SIGNATURE, MSG_OUTSIDE, REJECTED_MBX_KEY,
    FakeBinanceError, mandatory,
)

MAX_RECV_WINDOW = 60_000


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
        parts.append("&".join(kept))
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


def check_timestamp(params: dict, now_ms: int) -> None:
    try:
        ts = int(params["timestamp"])
        if ts > 10**14:  # microseconds
            ts //= 1000
    except (KeyError, ValueError):
        raise mandatory("timestamp") from None
    try:
        window = float(params.get("recvWindow", "5000"))
    except ValueError:
        raise mandatory("recvWindow") from None
    if not 0 < window <= MAX_RECV_WINDOW:
        raise mandatory("recvWindow")
    if ts >= now_ms + 1000:
        raise FakeBinanceError(400, INVALID_TIMESTAMP, MSG_AHEAD)
    if now_ms - ts > window:
        raise FakeBinanceError(400, INVALID_TIMESTAMP, MSG_OUTSIDE)
