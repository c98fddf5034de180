"""What the sidecar needs from a Binance frame: the series key, the candle's open time, and the bytes to forward.

Frames are not re-encoded: for the raw ``/ws/...`` form the frame itself is forwarded, and for the
combined ``/stream?streams=...`` form the exact bytes of its ``data`` object (``msgspec.Raw``).
A real raw frame (``wss://stream.binance.com:9443/ws/btcusdt@kline_5m``)::

    {"e":"kline","E":1631637132163,"s":"BTCUSDT","k":{"t":1631637000000,"T":1631637299999,
     "s":"BTCUSDT","i":"5m","f":1054221988,"L":1054224183,"o":"46692.06000000","c":"46672.98000000",
     "h":"46720.00000000","l":"46658.01000000","v":"53.38997000","n":2196,"x":false,
     "q":"2492731.28713130","V":"28.76136000","Q":"1342722.01811650","B":"0"}}

Frames that are not klines are either control frames the connection must act on (``Control``: a
reply to SUBSCRIBE, an error reply, ``serverShutdown``) or invalid (``FrameError``, dead-lettered).
Pure: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from streaming.errors import FrameError

INTERVALS = frozenset(("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"))


class _K(msgspec.Struct):
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


class _Event(msgspec.Struct):
    e: str
    E: int
    s: str
    k: _K


class _Combined(msgspec.Struct):
    stream: str
    data: msgspec.Raw


_decode_event = msgspec.json.Decoder(_Event).decode
_decode_combined = msgspec.json.Decoder(_Combined).decode
_decode_any = msgspec.json.Decoder().decode
# What decoding bytes that are not the expected JSON can raise: msgspec's own errors, and UnicodeDecodeError for
# invalid UTF-8 inside a JSON string (not a msgspec error). Each makes the frame a dead letter, never a crash.
_UNDECODABLE = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


class Control(enum.Enum):
    """Non-kline frames the connection handles itself."""

    REPLY = "reply"  # {"result": ..., "id": N}
    ERROR = "error"  # {"error": {"code": 2, "msg": "..."}, "id": N}
    SHUTDOWN = "serverShutdown"  # {"e":"serverShutdown","E":...} (or wrapped in a combined frame)


@dataclass(frozen=True, slots=True)
class KlineFrame:
    key: bytes  # b"BTCUSDT:1m"
    interval: str
    open_time: int
    closed: bool
    value: bytes  # the event bytes, as received


def unwrap(frame: bytes) -> bytes:
    """The event bytes of a frame: ``data`` of a combined-stream frame, else the frame itself."""
    if frame[:10].lstrip().startswith(b'{"stream"'):
        try:
            return bytes(_decode_combined(frame).data)
        except _UNDECODABLE as exc:
            raise FrameError(f"bad combined-stream frame: {exc}") from None
    return frame


def read_kline_frame(event: bytes) -> KlineFrame:
    """Check that ``event`` is a well-formed kline event and derive its Kafka key ``SYMBOL:interval``."""
    try:
        ev = _decode_event(event)
    except _UNDECODABLE as exc:
        raise FrameError(f"not a kline event: {exc}") from None
    k = ev.k
    if ev.e != "kline":
        raise FrameError(f"not a kline event: e={ev.e!r}")
    if k.i not in INTERVALS or k.s != ev.s or k.T < k.t:
        raise FrameError(f"inconsistent kline event: s={ev.s!r} k.s={k.s!r} k.i={k.i!r} t={k.t} T={k.T}")
    return KlineFrame(f"{ev.s}:{k.i}".encode(), k.i, k.t, k.x, event)


def read_frame(frame: bytes) -> KlineFrame:
    """A raw or combined frame -> its kline (``FrameError`` when it is not one)."""
    return read_kline_frame(unwrap(frame))


def control_kind(frame: bytes) -> tuple[Control, dict] | None:
    """Recognise a control frame (after the kline fast path failed); ``None`` for anything else."""
    try:
        obj = _decode_any(frame)
    except _UNDECODABLE:
        return None
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("data"), dict) and "stream" in obj:
        obj = obj["data"]
    if obj.get("e") == "serverShutdown":
        return Control.SHUTDOWN, obj
    if "id" not in obj or not (obj["id"] is None or type(obj["id"]) is int):
        return None  # a reply names its request by an integer id (null for a request Binance could not read)
    if "error" in obj:
        return Control.ERROR, obj
    if "result" in obj:
        return Control.REPLY, obj
    return None
