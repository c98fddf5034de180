"""Exactly once into PostgreSQL: 100,000 messages with duplicates, out-of-order updates and 1 % malformed,
loaded in bounded batches (partition groups alternating, as mapped tasks do) that merge in small
sub-batches, one batch crashed between COPY and commit and another right after its commit. The candles equal the expected set exactly and the
dead letters equal the malformed set."""

import json
import random

import pytest
import sqlalchemy as sa

from klinepipe.ingest import ingest_batch
from tests.helpers import produce, sample_rows

pytestmark = pytest.mark.integration
TOTAL = 100_000


class Crash(Exception):
    pass


def _updates(row: list[str], symbol: str) -> list[dict]:
    """Five in-progress states of a real candle (valid OHLC, volume growing) and its closing event."""
    t, T = int(row[0]), int(row[6])
    events = []
    for i in range(1, 7):
        closed = i == 6
        k = {"t": t, "T": T, "s": symbol, "i": "1m", "o": row[1], "h": row[2], "l": row[3], "c": row[4],
             "v": row[5] if closed else f"{float(row[5]) * i / 6:.5f}", "x": closed}
        events.append({"e": "kline", "E": T + 1 if closed else t + i * 9_000, "s": symbol, "k": k})
    return events


def _corrupt(event: bytes, rng: random.Random) -> bytes:
    return rng.choice([
        lambda e: e[: len(e) // 2],                               # truncated JSON
        lambda e: e.replace(b'"c":"', b'"c":"x', 1),              # not a decimal
        lambda e: e.replace(b'"e":"kline"', b'"e":"trade"', 1),   # wrong event type
        lambda e: e.replace(b'"i":"1m"', b'"i":"2m"', 1),         # unknown interval
    ])(event)


def _messages(rng: random.Random):
    """(key, value, is_malformed) messages, shuffled within each series (out of order), with duplicates."""
    per_series = {}
    for symbol in ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"):  # the real BTCUSDT path under four names
        events = [json.dumps(e, separators=(",", ":")).encode() for r in sample_rows(3_800) for e in _updates(r, symbol)]
        per_series[symbol] = events
    msgs = []
    for symbol, events in per_series.items():
        chosen = events + rng.sample(events, 1_950)  # duplicates: 4 x (22,800 + 1,950) = 99,000
        rng.shuffle(chosen)  # out-of-order updates, closing events before in-progress ones included
        msgs += [(f"{symbol}:1m".encode(), e, False) for e in chosen]
    bad = [(m[0], _corrupt(m[1], rng), True) for m in rng.sample(msgs, TOTAL // 100)]
    msgs = msgs[: TOTAL - len(bad)] + bad
    rng.shuffle(msgs)  # keys keep each series in one partition; order inside it is random
    return msgs


def _expected(msgs) -> dict:
    best = {}
    for _, value, bad in msgs:
        if bad:
            continue
        e = json.loads(value)
        key = (e["s"], e["k"]["t"])
        rank = (e["k"]["x"], e["E"])
        if key not in best or rank > best[key][0]:
            best[key] = (rank, e["k"]["c"], e["k"]["v"], e["k"]["x"])
    return {k: v[1:] for k, v in best.items()}


def test_100k_messages_with_duplicates_disorder_malformed_and_two_crashes(engine, kafka_bootstrap, topic):
    rng = random.Random(20261125)
    msgs = _messages(rng)
    assert len(msgs) == TOTAL
    produce(kafka_bootstrap, topic, [m[1] for m in msgs], keys=[m[0] for m in msgs])
    config = {"bootstrap.servers": kafka_bootstrap}
    groups = [[0, 2, 4], [1, 3, 5]]

    def run(i: int, stage: str | None = None):
        def checkpoint(at: str) -> None:
            if at == stage:
                raise Crash(at)
        # small sub-batch merges: several run (on the worker thread) before each crash
        return ingest_batch(engine, config, topic=topic, partitions=groups[i % 2], max_messages=15_000, merge_every=1_500,
                            checkpoint=checkpoint)

    with pytest.raises(Crash):
        run(0, "staged")      # killed between COPY and commit: nothing of it stays
    with pytest.raises(Crash):
        run(1, "committed")   # killed right after commit: the retry must not load it again
    i = 2
    while True:  # alternate the two partition groups until both have nothing left
        read = run(i).messages + run(i + 1).messages
        i += 2
        if read == 0:
            break

    with engine.connect() as c:
        stored = {(row.symbol, int(row.ms)): (str(row.close), str(row.volume), row.is_closed) for row in c.execute(sa.text(
            "SELECT symbol, (extract(epoch FROM open_time) * 1000)::bigint AS ms, close, volume, is_closed FROM market.candles"))}
        dead = sorted(bytes(r.raw) for r in c.execute(sa.text("SELECT raw FROM etl.dead_letters")))
        offsets = c.execute(sa.text("SELECT sum(next_offset) FROM etl.kafka_offsets WHERE topic = :t"), {"t": topic}).scalar()
    expected = _expected(msgs)
    assert len(stored) == len(expected)
    assert stored == {k: (c, v, x) for k, (c, v, x) in expected.items()}
    assert dead == sorted(m[1] for m in msgs if m[2])
    assert offsets == TOTAL
