"""Notification messages (pure): the stable id, the text a human reads, the webhook body and its HMAC signature,
the retry backoff and the per-channel rate limit."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

KINDS = ("fill", "risk_block", "kill_switch", "kill_switch_action", "strategy_error", "order_error", "outage",
         "protection_placed", "protection_triggered", "daily_summary")
_TITLES = {"fill": "Fill", "risk_block": "Risk block", "kill_switch": "Kill switch", "kill_switch_action": "Kill switch action",
           "strategy_error": "Strategy error", "order_error": "Order error", "outage": "Outage",
           "protection_placed": "Protection placed",
           "protection_triggered": "Protection triggered", "daily_summary": "Daily summary"}


@dataclass(frozen=True, kw_only=True)
class Message:
    id: int  # trading.notifications.id
    mode: str
    kind: str
    payload: dict
    created_at: datetime

    @property
    def message_id(self) -> str:
        """The id every delivery attempt of this message carries (a receiver dedupes on it)."""
        return f"klinepipe-{self.mode}-{self.id}"


def render_text(msg: Message) -> str:
    """One or two lines for a human: ``[MODE] Title: what`` and the message id."""
    p = msg.payload
    if msg.kind == "fill":
        what = f"{p['side']} {p['quantity']} {p['symbol']} @ {p['price']} (fee {p['fee']} {p['fee_asset']}), {p['sleeve']}"
    elif msg.kind == "daily_summary":
        what = (f"{p['day']}: {p['fills']} fill(s), {p['orders']} order(s), {p['risk_blocks']} risk block(s); equity "
                f"{p.get('equity') or '?'} ({p.get('pnl') or '?'} today); kill switch {p['kill_switch']}")
    else:
        what = " ".join(x for x in (p.get("sleeve") or "", p.get("detail") or "") if x)
    return f"[{msg.mode.upper()}] {_TITLES.get(msg.kind, msg.kind)}: {what}\n#{msg.message_id}"


def webhook_body(msg: Message) -> bytes:
    """The JSON the webhook receives: the same bytes on every attempt (so the signature is the same too)."""
    doc = {"id": msg.message_id, "mode": msg.mode, "kind": msg.kind, "text": render_text(msg), "payload": msg.payload,
           "created_at": msg.created_at.isoformat()}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()


def sign(body: bytes, secret: str) -> str:
    """``X-Klinepipe-Signature``: ``sha256=`` + hex HMAC-SHA256 of the raw body with the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff_seconds(attempts: int, cap: float, first: float = 5.0) -> float:
    """Seconds before attempt ``attempts + 1``: first, 2x, 4x ... capped at ``cap``."""
    return min(cap, first * 2 ** max(attempts - 1, 0))


class RateLimit:
    """A token bucket: at most ``per_minute`` sends a minute, bursts up to ``per_minute``."""

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self._rate, self._clock = per_minute / 60.0, clock
        self._capacity = float(per_minute)
        self._tokens, self._at = self._capacity, clock()

    def available(self) -> int:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        return int(self._tokens)

    def take(self) -> None:
        self._tokens -= 1
