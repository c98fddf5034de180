"""Record mode: every raw frame of the live streams, one a line, into a JSONL file (for ``replay`` later)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streaming.config import StreamingSettings
from streaming.envelope import control_kind
from streaming.kline_feed import KlineFeed, policy_from
from streaming.metrics import Stats
from streaming.universe import stream_names


async def run_record(settings: StreamingSettings, out: Path, stop: asyncio.Event, stats: Stats) -> int:
    """Write every raw frame, one a line, to ``out`` until ``stop``; returns the number written."""
    written = 0
    with open(out, "ab") as f:
        def handle(frame: bytes, _at: int):
            nonlocal written
            stats.frames += 1
            f.write(frame.replace(b"\n", b" ") + b"\n")
            written += 1
            return None if b'"kline"' in frame[:40] else control_kind(frame)

        feed = KlineFeed(settings.ws_url, policy_from(settings), handle, stats=stats,
                         per_connection=settings.streams_per_connection)
        await feed.run(stream_names(settings.symbols, settings.intervals), stop)
    return written
