"""The sidecar's dead-letter topic -> etl.dead_letters, exactly once, against the real broker and PostgreSQL."""

import pytest
import sqlalchemy as sa
from confluent_kafka import Producer

import klinepipe.dead_letter_topic as dlt
from klinepipe.dead_letter_topic import NO_ERROR, load_dead_letter_topic
from streaming.config import KafkaSettings
from streaming.kafka_sink import build_sink

pytestmark = pytest.mark.integration


def _dead_letters(engine, topic):
    with engine.connect() as c:
        return c.execute(sa.text('SELECT "offset", raw, error FROM etl.dead_letters WHERE topic = :t ORDER BY "offset"'),
                         {"t": topic}).fetchall()


def test_the_sidecars_rejects_land_in_dead_letters_once_with_their_reasons(engine, kafka_bootstrap, topic):
    dlq, config = f"{topic}.dlq", {"bootstrap.servers": kafka_bootstrap}
    sink = build_sink(KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=topic, dlq_topic=dlq))
    rejects = [(b"{not json", "not JSON: unexpected character"), (b'{"e":"trade"}', "not a kline event: 'trade'")]
    for raw, error in rejects:
        sink.dead_letter(raw, error, "binance", 1_700_000_000_000)
    sink.close()
    bare = Producer(config)
    bare.produce(dlq, b"\xff\x00 bytes from elsewhere")  # no error header, not UTF-8
    bare.flush()

    first = load_dead_letter_topic(engine, config, topic=dlq)
    again = load_dead_letter_topic(engine, config, topic=dlq)

    assert (first, again) == (3, 0)
    stored = _dead_letters(engine, dlq)
    assert [(bytes(r.raw), r.error) for r in stored] == [*rejects, (b"\xff\x00 bytes from elsewhere", NO_ERROR)]
    assert [r.offset for r in stored] == [0, 1, 2]


def test_a_failure_before_commit_keeps_neither_rows_nor_offsets(engine, kafka_bootstrap, topic, monkeypatch):
    dlq, config = f"{topic}.dlq", {"bootstrap.servers": kafka_bootstrap}
    sink = build_sink(KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=topic, dlq_topic=dlq))
    sink.dead_letter(b"[]", "not a kline event", "replay", 0)
    sink.close()

    def crash(*_a, **_k):
        raise RuntimeError("crash while writing the offsets")

    with monkeypatch.context() as m:
        m.setattr(dlt, "write_offsets", crash)
        with pytest.raises(RuntimeError):
            load_dead_letter_topic(engine, config, topic=dlq)
    assert _dead_letters(engine, dlq) == []

    assert load_dead_letter_topic(engine, config, topic=dlq) == 1
    assert [r.error for r in _dead_letters(engine, dlq)] == ["not a kline event"]
