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


def test_sub_batch_merges_equal_one_merge_and_an_error_mid_batch_keeps_nothing(engine, kafka_bootstrap, topic, monkeypatch):
    """Merging in sub-batches on the worker thread stores what one merge would; an error while reading,
    after sub-batches were merged, rolls all of them back with the offsets."""
    import klinepipe.ingest as ingest

    rows = sample_rows(3_000)
    updates = [line for line in CAPTURE.read_bytes().splitlines() if line.strip()]
    produce(kafka_bootstrap, topic, closed_events(rows) + updates, source="binance")
    config = {"bootstrap.servers": kafka_bootstrap}

    real_parse, calls = ingest.parse_into, []

    def parse_then_fail(chunk, *args):
        calls.append(len(chunk))
        if sum(calls) > 2_000:  # sub-batches of 200 have been merged by now
            raise RuntimeError("broker lost mid-batch")
        real_parse(chunk, *args)

    real_merge, merged = ingest.merge_copy, []

    def counting_merge(cur, buffer):
        merged.append(buffer.getvalue().count("\n"))
        return real_merge(cur, buffer)

    monkeypatch.setattr(ingest, "read_chunks", _in_chunks_of(ingest.read_chunks, 250))
    monkeypatch.setattr(ingest, "parse_into", parse_then_fail)
    monkeypatch.setattr(ingest, "merge_copy", counting_merge)
    with pytest.raises(RuntimeError, match="mid-batch"):
        ingest_batch(engine, config, topic=topic, merge_every=200)
    assert len(merged) >= 5 and sum(merged) >= 1_000  # several sub-batches were merged before the error
    assert _candles(engine) == []
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM etl.kafka_offsets WHERE topic = :t"), {"t": topic}).scalar() == 0

    monkeypatch.setattr(ingest, "parse_into", real_parse)
    small = ingest_batch(engine, config, topic=topic, merge_every=200)
    by_small = _candles(engine)
    with engine.begin() as c:
        c.execute(sa.text("TRUNCATE market.candles, etl.kafka_offsets"))
    one = ingest_batch(engine, config, topic=topic, merge_every=1_000_000)
    assert (small.messages, small.candles, small.closed) == (one.messages, one.candles, one.closed) == (3_000 + len(updates), 3_001, 3_000)
    assert by_small == _candles(engine)


def _in_chunks_of(read_chunks, size: int):
    def chunks(*args, **kwargs):
        for chunk in read_chunks(*args, **kwargs):
            for i in range(0, len(chunk), size):
                yield chunk[i : i + size]
    return chunks
