"""Lineage: a candle the sidecar fills in over REST is stored as ``gap_fill``, not as the DAG's ``backfill``."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
import sqlalchemy as sa

from klinepipe.ingest import ingest_batch
from klinepipe.lineage import GAP_FILL, SOURCES
from tests.integration.test_streaming_live import fakes, live_settings, make_sink, read_topic, run_sidecar, settle, until

pytestmark = pytest.mark.integration


def test_a_gap_filled_candle_is_stored_with_source_gap_fill(engine, kafka_bootstrap, topic):
    rest, ws = fakes()
    series = [("BTCUSDT", "1s")]

    async def drop(parts) -> None:
        await until(lambda: ws.clients() == 1)
        for _ in range(3):
            await asyncio.sleep(0.3)
            await asyncio.to_thread(ws.drop, 0.3)  # down for 0.3 s: 1 s candles close meanwhile
            await until(lambda: ws.clients() == 1)
        await settle(parts, ws, series)

    try:
        sink = make_sink(kafka_bootstrap, topic)
        run_sidecar(live_settings(ws, rest, symbols=("BTCUSDT",), intervals=("1s",)), sink, drop)
        messages = read_topic(kafka_bootstrap, topic)
    finally:
        ws.stop()
        rest.stop()
    filled = {msgspec.json.decode(v)["k"]["t"] for _, v, h in messages if h["source"] == GAP_FILL}
    assert filled  # the drops lost closing events and REST filled them in

    ingest_batch(engine, {"bootstrap.servers": kafka_bootstrap}, topic=topic)

    with engine.connect() as c:
        stored = dict(c.execute(sa.text("SELECT (extract(epoch FROM open_time) * 1000)::bigint, source FROM market.candles"
                                        " WHERE symbol = 'BTCUSDT' AND interval = '1s' AND is_closed")).fetchall())
        ranked = [r[0] for r in c.execute(sa.text("SELECT source FROM market.candle_sources ORDER BY conflict_rank"))]
    assert {t: stored.get(t) for t in filled} == {t: GAP_FILL for t in filled}
    assert "backfill" not in stored.values()  # the DAG's value, never the sidecar's
    assert ranked == list(SOURCES)
