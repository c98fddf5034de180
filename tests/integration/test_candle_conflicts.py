"""One conflict rule, whatever the batching: the same messages give the same ``market.candles`` rows.

Versions of a candle are generated with the ties that used to depend on batching (closed, equal event times,
different content, the same value at another scale, another source), then loaded into the real PostgreSQL in
every order and every split into batches: each batch is what ``ingest_batch`` does with what it read
(``parse_into``, then the guarded merge and the in-batch conflicts), all in one transaction that is rolled back.
Two closed versions that differ must be recorded in ``etl.candle_conflicts``.
"""

from __future__ import annotations

import random
from decimal import Decimal

import msgspec
import pytest
import sqlalchemy as sa
from confluent_kafka import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klinepipe.candle_store import copy_buffer, insert_conflicts, merge_copy
from klinepipe.ingest import ingest_batch, parse_into
from klinepipe.kafka_batch import message_source
from klinepipe.kline import CONTENT_FIELDS, parse_kline_event
from tests.helpers import closed_events, produce, rolled_back, sample_rows

pytestmark = pytest.mark.integration

ROWS = sample_rows(2)
BASE = [msgspec.json.decode(e) for e in closed_events(ROWS)]
_ROW_SQL = ("SELECT symbol, interval, open_time, close_time, open::text, high::text, low::text, close::text, volume::text,"
            " quote_volume::text, trades, taker_buy_base_volume::text, taker_buy_quote_volume::text, is_closed, event_time,"
            " source FROM market.candles ORDER BY symbol, interval, open_time")


@st.composite
def versions(draw) -> tuple[bytes, str]:
    """One version of one of two real candles: (event bytes, source)."""
    event = msgspec.json.decode(msgspec.json.encode(draw(st.sampled_from(BASE))))
    k = event["k"]
    k["x"] = draw(st.booleans())
    event["E"] = k["T"] + draw(st.sampled_from([0, 1]))  # equal event times are the point
    lo, hi = k["l"], k["h"]
    k["c"] = draw(st.sampled_from([k["c"], lo, hi, lo + ("0" if "." in lo else ".0"), "0" + hi]))  # same values, other scale or form
    k["v"] = draw(st.sampled_from([k["v"], k["v"] + "0", "1.5"]))
    k["n"] = draw(st.sampled_from([k.get("n", 1), 7]))
    return msgspec.json.encode(event), draw(st.sampled_from(["replay", "backfill", "binance"]))


def _messages(versions_: list[tuple[bytes, str]]) -> list[Message]:
    return [Message(topic="t", partition=0, offset=i, key=None, value=v, headers=[("source", s.encode())])
            for i, (v, s) in enumerate(versions_)]


def _load(cur, batches: list[list[Message]]) -> None:
    """Each batch as ``ingest_batch`` loads what it read: newest per candle, merge, in-batch conflicts."""
    for batch in batches:
        latest, dead, conflicts = {}, [], []
        parse_into(batch, "t", latest, dead, None, conflicts)
        assert not dead
        merge_copy(cur, copy_buffer((k, message_source(m)) for k, m in latest.values()))
        insert_conflicts(cur, conflicts)


def _outcome(engine, batches: list[list[Message]]) -> tuple[list, int]:
    with rolled_back(engine) as cur:
        _load(cur, batches)
        cur.execute(_ROW_SQL)
        rows = cur.fetchall()
        cur.execute("SELECT count(*) FROM etl.candle_conflicts")
        conflicts = cur.fetchone()[0]
    return rows, conflicts


def _splits(messages: list[Message], rnd: random.Random) -> list[list[list[Message]]]:
    cut = sorted(rnd.sample(range(1, len(messages)), rnd.randint(0, len(messages) - 1))) if len(messages) > 1 else []
    bounds = [0, *cut, len(messages)]
    return [[messages], [[m] for m in messages], [messages[a:b] for a, b in zip(bounds, bounds[1:])]]


def _closed_contents(versions_: list[tuple[bytes, str]]) -> dict:
    """Per candle, the distinct values of its closed versions (numeric: 1.5 and 1.50 are one value)."""
    out: dict = {}
    for value, _ in versions_:
        k = parse_kline_event(value)
        if k.is_closed:
            out.setdefault(k.open_time, set()).add(tuple(Decimal(str(getattr(k, f))) if getattr(k, f) is not None else None
                                                         for f in CONTENT_FIELDS))
    return out


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(versions(), min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_every_order_and_batching_of_the_same_messages_gives_the_same_rows(engine, versions_, rnd):
    orders = [versions_, versions_[::-1], rnd.sample(versions_, len(versions_))]

    outcomes = [_outcome(engine, split) for order in orders for split in _splits(_messages(order), rnd)]

    rows = [r for r, _ in outcomes]
    assert all(r == rows[0] for r in rows), rows
    in_conflict = any(len(contents) > 1 for contents in _closed_contents(versions_).values())
    assert all((n > 0) == in_conflict for _, n in outcomes), (in_conflict, [n for _, n in outcomes])


def _closed(row: list[str], close: str, event_time: int) -> bytes:
    event = msgspec.json.decode(closed_events([row])[0])
    event["k"]["c"], event["E"] = close, event_time
    return msgspec.json.encode(event)


def test_two_closed_versions_with_equal_event_times_one_winner_whatever_the_batching_and_both_recorded(engine, kafka_bootstrap, topic):
    row = ROWS[0]
    t = int(row[6]) + 1
    a, b = _closed(row, row[3], t), _closed(row, row[2], t)  # close at the low, close at the high: same event time
    produce(kafka_bootstrap, topic, [a, b])
    ingest_batch(engine, {"bootstrap.servers": kafka_bootstrap}, topic=topic)  # one batch: a, b
    with engine.connect() as c:
        one_batch = c.execute(sa.text(_ROW_SQL)).fetchall()
        in_batch = c.execute(sa.text("SELECT won FROM etl.candle_conflicts")).scalars().all()
        c.exec_driver_sql("TRUNCATE market.candles, etl.candle_conflicts")  # the offsets stay: the next batches read on
        c.commit()
    for value in (b, a):  # the other order, one message per batch
        produce(kafka_bootstrap, topic, [value])
        ingest_batch(engine, {"bootstrap.servers": kafka_bootstrap}, topic=topic)

    with engine.connect() as c:
        split = c.execute(sa.text(_ROW_SQL)).fetchall()
        conflicts = c.execute(sa.text("SELECT earlier->>'close' AS earlier, later->>'close' AS later, won,"
                                      " earlier_event_time = later_event_time AS same_time FROM etl.candle_conflicts")).fetchall()
    assert split == one_batch and split[0].close == max(row[2], row[3], key=float)  # the greater content wins
    assert in_batch == ["later"] and len(conflicts) == 1 and conflicts[0].same_time and conflicts[0].won == "earlier"
    winner = conflicts[0].earlier if conflicts[0].won == "earlier" else conflicts[0].later
    assert float(winner) == float(split[0].close)
