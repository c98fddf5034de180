"""Hop 1: Kafka topic -> market.candles, exactly once, against the real broker and PostgreSQL."""

import json

import pytest
import sqlalchemy as sa

from klinepipe.ingest import ingest_batch
from tests.helpers import SAMPLE, closed_events, produce, sample_rows

pytestmark = pytest.mark.integration
CAPTURE = SAMPLE / "BTCUSDT-kline_5m-ws-20210914.jsonl"


def _candles(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT symbol, interval, open_time, close, volume, is_closed, source, trades"
                                 " FROM market.candles ORDER BY symbol, interval, open_time")).fetchall()


def _close(event: bytes) -> str:
    return json.loads(event)["k"]["c"]


def test_closed_candles_load_once_with_their_offsets(engine, kafka_bootstrap, topic):
    rows = sample_rows(200)
    produce(kafka_bootstrap, topic, closed_events(rows))
    config = {"bootstrap.servers": kafka_bootstrap}

    first = ingest_batch(engine, config, topic=topic)
    again = ingest_batch(engine, config, topic=topic)

    assert (first.messages, first.candles, first.changed, first.dead_letters) == (200, 200, 200, 0)
    assert (again.messages, again.changed) == (0, 0)
    candles = _candles(engine)
    assert len(candles) == 200
    assert [str(c.close) for c in candles] == [r[4] for r in rows]  # exact decimals
    assert all(c.is_closed and c.source == "replay" for c in candles)
    with engine.connect() as c:
        stored = dict(c.execute(sa.text("SELECT partition, next_offset FROM etl.kafka_offsets WHERE topic = :t"), {"t": topic}).fetchall())
    assert sum(stored.values()) == 200


def test_in_progress_updates_keep_the_newest_and_never_overwrite_a_closed_candle(engine, kafka_bootstrap, topic):
    updates = [line for line in CAPTURE.read_bytes().splitlines() if line.strip()]
    config = {"bootstrap.servers": kafka_bootstrap}
    produce(kafka_bootstrap, topic, updates[:30], source="binance")
    ingest_batch(engine, config, topic=topic)
    (c,) = _candles(engine)
    assert not c.is_closed and str(c.close) == _close(updates[29])  # the newest of the first 30 (E ascending)

    # the remaining updates arrive, then a closed version, then older in-progress updates again
    closed = updates[-1].replace(b'"x":false', b'"x":true')
    produce(kafka_bootstrap, topic, updates[30:] + [closed] + updates[:5], source="binance")
    ingest_batch(engine, config, topic=topic)

    (c,) = _candles(engine)
    assert c.is_closed and str(c.close) == _close(closed)
    assert _close(updates[0]) != _close(closed)


def test_an_older_event_never_overwrites_a_newer_one(engine, kafka_bootstrap, topic):
    updates = [line for line in CAPTURE.read_bytes().splitlines() if line.strip()]
    config = {"bootstrap.servers": kafka_bootstrap}
    produce(kafka_bootstrap, topic, [updates[40]])
    ingest_batch(engine, config, topic=topic)
    produce(kafka_bootstrap, topic, [updates[10]])

    result = ingest_batch(engine, config, topic=topic)

    (c,) = _candles(engine)
    assert result.changed == 0
    assert str(c.close) == _close(updates[40]) != _close(updates[10])


def test_malformed_messages_go_to_dead_letters_with_reasons(engine, kafka_bootstrap, topic):
    good = closed_events(sample_rows(10))
    bad = [b"{not json", good[0].replace(b'"x":true', b'"x":"yes"'), good[1].replace(b'"h":"', b'"h":"-')]
    produce(kafka_bootstrap, topic, good + bad)

    result = ingest_batch(engine, {"bootstrap.servers": kafka_bootstrap}, topic=topic)

    assert (result.candles, result.dead_letters) == (10, 3)
    with engine.connect() as c:
        dead = c.execute(sa.text('SELECT raw, error, topic FROM etl.dead_letters ORDER BY "offset"')).fetchall()
    assert sorted(bytes(d.raw) for d in dead) == sorted(bad)
    assert all(d.error and d.topic == topic for d in dead)


class Crash(Exception):
    """Stands for the process dying at a checkpoint."""


def crash_at(stage: str):
    def checkpoint(at: str) -> None:
        if at == stage:
            raise Crash(stage)
    return checkpoint


def test_a_crash_before_commit_loads_nothing_and_the_rerun_loads_everything(engine, kafka_bootstrap, topic):
    produce(kafka_bootstrap, topic, closed_events(sample_rows(50)))
    config = {"bootstrap.servers": kafka_bootstrap}

    with pytest.raises(Crash):
        ingest_batch(engine, config, topic=topic, checkpoint=crash_at("staged"))
    assert _candles(engine) == []

    result = ingest_batch(engine, config, topic=topic)

    assert result.candles == 50 and len(_candles(engine)) == 50
