"""When a candle is final: the one rule (pure).

A stream event says it itself: ``k.x`` is true on the last update of a bar (reference 1.4). A REST or file
row carries no flag: it is final when its close time is before the moment it was fetched (a range that
reaches "now" ends with the bar still being built; data.binance.vision files hold only finished days).
Every ``Kline.is_closed`` comes from one of the two; downstream, the loader's conflict rule
(``klinepipe.kline.beats``, and the merge guard generated from it) lets a closed state win, and features
are computed from closed candles only.

``is_closing_event`` is the trigger's question "does this Kafka value close a candle?". Its byte search for
``true`` is only a pre-filter: an event without those bytes cannot have ``"x": true``; an event with them is
decoded and its ``k.x`` read, so the answer is exactly the rule's (tests/unit/test_binance_wire.py).
"""

from __future__ import annotations

from klinepipe.binance.events import DECODE_ERRORS, decode_kline_event

_TRUE = b"true"  # the JSON literal: it cannot be escaped, so every event with "x": true holds these bytes


def is_closing_event(raw: bytes | None) -> bool:
    """Whether ``raw`` decodes as a kline event (``events.BinanceKlineEvent``, ``e`` == ``"kline"``) whose ``k.x``
    is true: the bar's final update. The candle's own checks are the loader's (``kline.parse_kline_event``)."""
    if not raw or _TRUE not in raw:
        return False
    try:
        event = decode_kline_event(raw)
    except DECODE_ERRORS:
        return False
    return event.e == "kline" and event.k.x


def is_final_row(close_time: int, fetched_at_ms: int) -> bool:
    """Whether a REST kline row (no ``x`` flag) fetched at ``fetched_at_ms`` is a finished bar."""
    return close_time < fetched_at_ms
