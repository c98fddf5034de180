"""The Binance kline stream event as typed structs, field names as on the wire (pure, no I/O).

A real event, as received on ``wss://stream.binance.com:9443/ws/btcusdt@kline_5m``::

    {"e":"kline","E":1631637132163,"s":"BTCUSDT","k":{"t":1631637000000,"T":1631637299999,
     "s":"BTCUSDT","i":"5m","f":1054221988,"L":1054224183,"o":"46692.06000000",
     "c":"46672.98000000","h":"46720.00000000","l":"46658.01000000","v":"53.38997000",
     "n":2196,"x":false,"q":"2492731.28713130","V":"28.76136000","Q":"1342722.01811650","B":"0"}}

``decode_kline_event`` only decodes (types and required fields); ``klinepipe.kline.parse_kline_event`` also
checks the candle's invariants and is what both the sidecar and the loader accept.
"""

from __future__ import annotations

import msgspec


class BinanceKline(msgspec.Struct, gc=False):
    """The ``k`` object of a kline event, field names as on the wire (no GC tracking: strings and numbers only)."""

    t: int
    T: int
    s: str
    i: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741 - Binance's wire name
    v: str
    x: bool
    n: int | None = None
    q: str | None = None
    V: str | None = None
    Q: str | None = None
    f: int | None = None
    L: int | None = None
    B: str | None = None


class BinanceKlineEvent(msgspec.Struct, gc=False):
    """A kline stream event (``e`` == ``"kline"``)."""

    e: str
    E: int
    s: str
    k: BinanceKline


decode_kline_event = msgspec.json.Decoder(BinanceKlineEvent).decode
# Everything msgspec raises for bytes that are not the expected JSON: malformed JSON or wrong types, and invalid
# UTF-8 inside a JSON string (``UnicodeDecodeError``, which is not a ``DecodeError``), or nesting too deep. Any
# of them makes the message a dead letter; one left uncaught would fail, and roll back, a whole batch.
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)
