"""What the sidecar needs from a Binance frame: the series key and the event bytes to forward.

Frames are not re-encoded: for the raw ``/ws/...`` form the frame itself is forwarded, and for the
combined ``/stream?streams=...`` form the exact bytes of its ``data`` object (``msgspec.Raw``).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec


class _K(msgspec.Struct):
    i: str
    t: int
    x: bool


class _Event(msgspec.Struct):
    e: str
    s: str
    k: _K | None = None


class _Combined(msgspec.Struct):
    stream: str
    data: msgspec.Raw


_decode_event = msgspec.json.Decoder(_Event).decode
_decode_combined = msgspec.json.Decoder(_Combined).decode


class FrameError(ValueError):
    """A frame that is not a kline event; the message says why."""


@dataclass(frozen=True, slots=True)
class KlineFrame:
    key: bytes
    value: bytes
    closed: bool


def unwrap(frame: bytes) -> bytes:
    """The event bytes of a frame: ``data`` of a combined-stream frame, else the frame itself."""
    if frame[:10].lstrip().startswith(b'{"stream"'):
        try:
            return bytes(_decode_combined(frame).data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise FrameError(f"bad combined-stream frame: {exc}") from None
    return frame


def read_kline_frame(event: bytes) -> KlineFrame:
    """Check that ``event`` is a kline event and derive its Kafka key ``SYMBOL:interval``."""
    try:
        ev = _decode_event(event)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"not a kline event: {exc}") from None
    if ev.e != "kline" or ev.k is None:
        raise FrameError(f"not a kline event: e={ev.e!r}")
    return KlineFrame(key=f"{ev.s}:{ev.k.i}".encode(), value=event, closed=ev.k.x)
