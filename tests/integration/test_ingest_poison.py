"""Values PostgreSQL would refuse become dead letters; they never block a batch.

Loaded as a candle, each of these would fail the whole COPY or merge: the batch would roll back, and
every later run would read the same message and fail again (a poison pill stalling the pipeline).
"""

import random
import string

import msgspec
import pytest
import sqlalchemy as sa

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
