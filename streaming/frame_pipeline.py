"""Frames -> Kafka: validate, key, de-duplicate closed candles, publish; the invalid to the dead-letter topic.

``FramePipeline.handle`` is the per-frame hot path shared by every mode (live, replay): decode, check,
ask the ledger, hand to the sink, in a few lines. Control frames (SUBSCRIBE replies, error replies,
``serverShutdown``) are returned to the connection, which acts on them.
"""

from __future__ import annotations

from collections.abc import Callable

from streaming.envelope import Control, FrameError, KlineFrame, control_kind, read_frame
from streaming.kafka_sink import KafkaSink
from streaming.closed_candle_ledger import DUPLICATE, HOLD, ClosedCandleLedger


class FramePipeline:
    def __init__(self, sink: KafkaSink, source: str, *, ledger: ClosedCandleLedger | None = None,
                 on_gap: Callable[[bytes], None] | None = None) -> None:
        self.sink, self.source, self.ledger, self.on_gap = sink, source, ledger, on_gap
        self.stats = sink.stats

    def handle(self, frame: bytes, received_at_ms: int) -> tuple[Control, dict] | None:
        """Publish (or hold, or skip as a duplicate) one frame; return what a control frame asks for."""
        self.stats.frames += 1
        if not self.stats.frames & 15:
            self.sink.poll()  # serve delivery reports promptly even while frames keep the loop busy
        try:
            kf = read_frame(frame)
        except FrameError as exc:
            control = control_kind(frame)
            if control is None:
                self.sink.dead_letter(frame, str(exc), self.source, received_at_ms)
            return control
        if self.ledger is None:
            self.sink.publish(kf.key, kf.value, self.source, received_at_ms)
        else:
            self._route(kf, received_at_ms)
        return None

    def reject(self, frame: bytes, reason: str, received_at_ms: int) -> None:
        """Dead-letter a frame its source already knows is not a kline (a replay line, a REST row)."""
        self.stats.frames += 1
        self.sink.dead_letter(frame, reason, self.source, received_at_ms)

    def release(self, held: list[object]) -> None:
        """Publish closing frames held during a backfill (the ledger skips the ones it now has)."""
        for kf, received_at_ms in held:
            self._route(kf, received_at_ms)

    def _route(self, kf: KlineFrame, received_at_ms: int) -> None:
        verdict = self.ledger.observe(kf.key, kf.interval, kf.open_time, kf.closed)
        if verdict.route is HOLD:
            self.ledger.hold(kf.key, kf.open_time, (kf, received_at_ms))
        elif verdict.route is DUPLICATE:
            self.stats.duplicates += 1
        else:
            self.sink.publish(kf.key, kf.value, self.source, received_at_ms)
        if verdict.gap and self.on_gap is not None:
            self.on_gap(kf.key)
