"""What the sidecar needs from a Binance frame: the series key, the candle's open time, and the bytes to forward.

Frames are not re-encoded: for the raw ``/ws/...`` form the frame itself is forwarded, and for the
combined ``/stream?streams=...`` form the exact bytes of its ``data`` object (``msgspec.Raw``).
A raw frame is one kline event (``klinepipe.binance.events``, real sample there).

The event is checked by the loader's own parser, so the sidecar accepts exactly what the loader accepts.
Frames that are not klines are either control frames the connection must act on (``Control``: a
reply to SUBSCRIBE, an error reply, ``serverShutdown``) or invalid (``FrameError``, dead-lettered).
Pure: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from klinepipe.binance.events import DECODE_ERRORS
from klinepipe.errors import KlineParseError
from klinepipe.kline import parse_kline_event
from streaming.errors import FrameError


class _Combined(msgspec.Struct):
    stream: str
    data: msgspec.Raw


_decode_combined = msgspec.json.Decoder(_Combined).decode
_decode_any = msgspec.json.Decoder().decode


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
        except DECODE_ERRORS as exc:
            raise FrameError(f"bad combined-stream frame: {exc}") from None
    return frame


def read_kline_frame(event: bytes) -> KlineFrame:
    """Check ``event`` exactly as the loader will (``klinepipe.kline.parse_kline_event``) and derive its Kafka
    key ``SYMBOL:interval``: what passes here is never dead-lettered downstream, what fails goes to the DLQ now."""
    try:
        k = parse_kline_event(event)
    except KlineParseError as exc:
        raise FrameError(str(exc)) from None
    return KlineFrame(k.key.encode(), k.interval, k.open_time, k.is_closed, event)


def read_frame(frame: bytes) -> KlineFrame:
    """A raw or combined frame -> its kline (``FrameError`` when it is not one)."""
    return read_kline_frame(unwrap(frame))


def control_kind(frame: bytes) -> tuple[Control, dict] | None:
    """Recognise a control frame (after the kline fast path failed); ``None`` for anything else."""
    try:
        obj = _decode_any(frame)
    except DECODE_ERRORS:
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
