"""The exactly-once drill's data and assertions, shared by the loader's drill (``tests/integration/test_exactly_once.py``)
and the same drill across two Celery workers (``tests/airflow/test_celery_executor.py``): 100,000 messages of four
series (the real BTCUSDT path under four names) with duplicates, out-of-order updates and 1 % malformed."""

from __future__ import annotations

import json
import random

import sqlalchemy as sa

from tests.helpers import sample_rows

TOTAL = 100_000


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


def drill_messages(rng: random.Random):
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


def expected_candles(msgs) -> dict:
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


def assert_loaded_exactly_once(engine, topic: str, msgs) -> None:
    """The candles equal the expected set exactly, the dead letters equal the malformed set, and the stored offsets
    account for every message once."""
    with engine.connect() as c:
        stored = {(row.symbol, int(row.ms)): (str(row.close), str(row.volume), row.is_closed) for row in c.execute(sa.text(
            "SELECT symbol, (extract(epoch FROM open_time) * 1000)::bigint AS ms, close, volume, is_closed FROM market.candles"))}
        dead = sorted(bytes(r.raw) for r in c.execute(sa.text("SELECT raw FROM etl.dead_letters")))
        offsets = c.execute(sa.text("SELECT sum(next_offset) FROM etl.kafka_offsets WHERE topic = :t"), {"t": topic}).scalar()
    expected = expected_candles(msgs)
    assert len(stored) == len(expected)
    assert stored == {k: (c, v, x) for k, (c, v, x) in expected.items()}
    assert dead == sorted(m[1] for m in msgs if m[2])
    assert offsets == TOTAL
