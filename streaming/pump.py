"""Frames -> Kafka: validate, key, publish; the invalid to the dead-letter topic. One place for both modes."""

from __future__ import annotations

import time

from streaming.envelope import FrameError, read_kline_frame, unwrap
from streaming.kafka_sink import KafkaSink


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def handle_frame(sink: KafkaSink, frame: bytes, source: str, received_at_ms: int) -> bool:
    """Publish one frame; return whether it was a closed kline. Non-kline control frames are ignored."""
    try:
        event = unwrap(frame)
        if event.startswith(b'{"result"') or event.startswith(b'{"id"'):
            return False  # reply to a SUBSCRIBE/UNSUBSCRIBE request
        kf = read_kline_frame(event)
    except FrameError as exc:
        sink.dead_letter(frame, str(exc), source, received_at_ms)
        return False
    sink.publish(kf.key, kf.value, source, received_at_ms)
    return kf.closed
