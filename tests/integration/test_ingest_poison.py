"""Values PostgreSQL would refuse, and bytes that are no kline at all, become dead letters; they never block a batch.

Loaded as a candle, each of these would fail the whole COPY or merge: the batch would roll back, and
every later run would read the same message and fail again (a poison pill stalling the pipeline).
"""

import random
import string

import msgspec
import pytest
import sqlalchemy as sa
from confluent_kafka import Producer

from klinepipe.db import raw_transaction
from klinepipe.ingest import ingest_batch
from tests.helpers import closed_events, produce, sample_rows

pytestmark = pytest.mark.integration


def _with(event: bytes, **changes) -> bytes:
    e = msgspec.json.decode(event)
    for name, value in changes.items():
        target, field = (e["k"], name[2:]) if name.startswith("k_") else (e, name)
        target[field] = value
    return msgspec.json.encode(e)


def _poison(good: bytes) -> dict[str, bytes]:
    k = msgspec.json.decode(good)["k"]
    return {
        "an Arabic-Indic digit in a price": _with(good, k_c=k["c"] + "\u0663"),
        "a fullwidth digit in a volume": _with(good, k_v="\uff11" + k["v"]),
        "open time past any timestamp": _with(good, k_t=10**17, k_T=10**17 + 59_999),
        "open time past bigint": _with(good, k_t=2**63, k_T=2**63 + 59_999),
        "event time past any timestamp": _with(good, E=10**17),
        "negative event time": _with(good, E=-1),
        "trade count past bigint": _with(good, k_n=2**63),
        "a symbol too long for the primary key's index": _long_symbol(good),
    }


def _long_symbol(good: bytes) -> bytes:
    symbol = "".join(random.Random(7).choices(string.ascii_uppercase + string.digits, k=6_000))  # incompressible
    return _with(good, s=symbol, k_s=symbol)


def test_values_postgres_would_refuse_are_dead_lettered_and_the_batch_loads(engine, kafka_bootstrap, topic):
    good = closed_events(sample_rows(20))
    bad = _poison(good[0])
    produce(kafka_bootstrap, topic, good[1:] + list(bad.values()))

    result = ingest_batch(engine, {"bootstrap.servers": kafka_bootstrap}, topic=topic)

    assert (result.candles, result.dead_letters) == (19, len(bad))
    with engine.connect() as c:
        dead = c.execute(sa.text("SELECT raw, error FROM etl.dead_letters")).fetchall()
        assert c.execute(sa.text("SELECT count(*) FROM market.candles")).scalar() == 19
    assert sorted(bytes(d.raw) for d in dead) == sorted(bad.values())
    assert all(any(why in d.error for why in ("out of range", "not a plain decimal", "more than 64")) for d in dead), [d.error for d in dead]


def test_a_source_header_postgres_cannot_store_is_kept_readable(engine, kafka_bootstrap, topic):
    produce(kafka_bootstrap, topic, closed_events(sample_rows(3)), source="re\x00play\\\t")

    result = ingest_batch(engine, {"bootstrap.servers": kafka_bootstrap}, topic=topic)

    assert result.candles == 3
    with engine.connect() as c:
        sources = c.execute(sa.text("SELECT DISTINCT source FROM market.candles")).scalars().all()
    assert sources == ["re\ufffdplay\\\t"]


def _produce_raw(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None, list]]) -> None:
    """(key, value, headers) as given, bytes the sidecar would never write included."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for key, value, headers in messages:
        producer.produce(topic, value=value, key=key, headers=headers, partition=0)
    assert producer.flush(30) == 0


def test_poison_values_keys_and_headers_among_good_messages_are_dead_lettered_and_the_batch_commits(engine, kafka_bootstrap, topic):
    good = closed_events(sample_rows(10))
    key = b"BTCUSDT:1m"
    poison = [
        (key, b'{"e":"kline","E":1,"s":"\xff\xfe"}', [("source", b"replay")]),  # the message of issue 12
        (key, good[0].replace(b'"s":"BTCUSDT"', b'"s":"BTC\xffUSDT"', 1), [("source", b"replay")]),  # invalid UTF-8 in a real event
        (key, b'{"e":"kline","E":' + b"[" * 50_000 + b"]" * 50_000 + b"}", []),  # nested past msgspec's limit
        (key, good[1].replace(b'"E":', b'"E":1e999,"x":', 1), []),  # a number out of range
        (b"\xff\xfe", good[2], [("source", b"replay")]),  # a key that is not UTF-8 (nor the event's series)
        (key, None, [("source", b"replay")]),  # no value at all
    ]
    headed = [(key, good[3], [("source", b"\xff\xfe\x00"), ("received_at", b"\xff"), ("source", None)]),  # bad headers: still load
              (key, good[9], [(b"\xff\xfe", b"x"), ("source", b"replay")])]  # a header name that is not UTF-8
    _produce_raw(kafka_bootstrap, topic, [(key, v, [("source", b"replay")]) for v in good[4:6]] + poison
                 + [(key, v, [("source", b"replay")]) for v in good[6:9]] + headed)

    result = ingest_batch(engine, {"bootstrap.servers": kafka_bootstrap}, topic=topic)

    assert (result.candles, result.dead_letters) == (7, len(poison))
    with engine.connect() as c:
        dead = c.execute(sa.text('SELECT "offset", key, raw, error FROM etl.dead_letters ORDER BY "offset"')).fetchall()
        stored = c.execute(sa.text("SELECT count(*) FROM market.candles")).scalar()
        sources = c.execute(sa.text("SELECT DISTINCT source FROM market.candles ORDER BY 1")).scalars().all()
        offsets = c.execute(sa.text("SELECT sum(next_offset) FROM etl.kafka_offsets WHERE topic = :t"), {"t": topic}).scalar()
    assert stored == 7 and offsets == 2 + len(poison) + 3 + 2  # committed: the next batch does not read them again
    assert [(bytes(d.key), None if d.raw is None else bytes(d.raw)) for d in dead] == [(k, v) for k, v, _ in poison]
    assert all(d.error for d in dead), [d.error for d in dead]
    assert set(sources) <= {"replay", "\ufffd\ufffd\ufffd", "unknown"} and "\ufffd\ufffd\ufffd" in sources
    assert ingest_batch(engine, {"bootstrap.servers": kafka_bootstrap}, topic=topic).messages == 0


def test_a_reason_quoting_nul_or_a_lone_surrogate_is_stored(engine):
    from klinepipe.dead_letters import DeadLetter, insert_dead_letters

    with raw_transaction(engine) as cur:
        insert_dead_letters(cur, [DeadLetter("t", 0, 1, None, b"x", "bad \x00 and \ud800")])

    with engine.connect() as c:
        assert c.execute(sa.text("SELECT error FROM etl.dead_letters")).scalar() == "bad \ufffd and \\ud800"
