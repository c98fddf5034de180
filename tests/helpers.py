"""Shared test helpers: real sample data, seeding and reading PostgreSQL and Kafka, a python-binance client pointed
at the fake Binance, and an independent crossover model."""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import msgspec
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from klinepipe.candle_store import stage_and_merge
from klinepipe.db import raw_transaction
from klinepipe.dsn import libpq_dsn
from klinepipe.kline import parse_kline_event
from streaming.kafka_sink import KafkaSink
from streaming.kafka_sink_state import OutgoingRecord
from streaming.replay import csv_row_to_event

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


def binance_client(target, *, signed: bool = False, key: str | None = None, secret: str | None = None, **kwargs):
    """A python-binance ``Client`` whose REST calls go to ``target``: a ``FakeBinance`` or a base URL
    (``http://host:port``). ``signed``: with the fake's own key pair (``key`` / ``secret`` override either half).
    ``kwargs`` go to ``Client`` (e.g. ``requests_params``)."""
    from binance import Client

    if signed:
        key, secret = key or target.api_key, secret or target.api_secret
    client = Client(key, secret, ping=False, **kwargs)
    client.API_URL = f"{target}/api" if isinstance(target, str) else target.api_url
    return client


def sample_rows(n: int, name: str = "BTCUSDT-1m.csv.gz") -> list[list[str]]:
    """The first ``n`` rows of a bundled 12-column kline file (header dropped)."""
    opener = gzip.open if name.endswith(".gz") else open
    with opener(SAMPLE / name, "rt", newline="") as f:
        return list(csv.reader(f))[1 : n + 1]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def closed_events(rows: list[list[str]], symbol: str = "BTCUSDT", interval: str = "1m") -> list[bytes]:
    return [msgspec.json.encode(csv_row_to_event(r, symbol, interval)) for r in rows]


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes] | None = None, source: str = "replay") -> None:
    sink = KafkaSink(Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}),
                     topic, f"{topic}.dlq")
    for i, value in enumerate(values):
        key = keys[i] if keys else _key(value)
        if key is None:
            sink.send(OutgoingRecord(topic, None, value, [("source", source.encode())], 0))
        else:
            sink.publish(key, value, source, 0)
    sink.close()


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes, dict]]:
    """Every message of ``topic`` (all partitions, from the start to the end of the log)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.partition.eof": True,
                  "enable.auto.commit": False})
    parts = list(c.list_topics(topic, timeout=10).topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out, eof = [], set()
    while len(eof) < len(parts):
        msg = c.poll(5)
        if msg is None:
            break
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
                continue
            raise RuntimeError(msg.error())
        out.append((msg.key(), msg.value(), {k: v.decode() for k, v in msg.headers() or []}))
    c.close()
    return out


@contextmanager
def rolled_back(engine) -> Iterator:
    """A cursor on a raw psycopg2 connection whose transaction is rolled back at the end, whatever happens: temporary
    tables and trial loads leave nothing behind (``klinepipe.db.raw_transaction`` is the committing twin)."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            yield cur
    finally:
        raw.rollback()
        raw.close()


def dsn_of(database_url: str) -> str:
    """The libpq DSN ``psycopg2.connect`` takes, from the tests' SQLAlchemy-style URL."""
    return libpq_dsn(database_url)


def shifted_rows(rows: list[list[str]], first_open_ms: int) -> list[list[str]]:
    """12-column kline rows moved in time so that the first opens at ``first_open_ms`` (spacing kept)."""
    shift = first_open_ms - int(rows[0][0])
    return [[str(int(r[0]) + shift), *r[1:6], str(int(r[6]) + shift), *r[7:]] for r in rows]


_HISTORY_PARTITIONS = ("SELECT inhrelid::regclass::text FROM pg_inherits"
                       " WHERE inhparent IN ('market.candles'::regclass, 'market.features'::regclass)")


@contextmanager
def partitions_dropped_after(engine) -> Iterator:
    """Drop the partitions of market.candles / market.features made inside (the session's database is shared:
    other tests' plans stay as they were)."""
    with engine.connect() as conn:
        before = set(conn.exec_driver_sql(_HISTORY_PARTITIONS).scalars())
    try:
        yield engine
    finally:
        with engine.begin() as conn:
            for part in set(conn.exec_driver_sql(_HISTORY_PARTITIONS).scalars()) - before:
                conn.exec_driver_sql(f"DROP TABLE {part}")


def seed_candles(engine, rows: list[list[str]]) -> None:
    """Merge 12-column kline rows into ``market.candles`` as closed BTCUSDT 1m replay candles, as the loader does."""
    with raw_transaction(engine) as cur:
        stage_and_merge(cur, [(parse_kline_event(e), "replay") for e in closed_events(rows)])


def seed_features(engine, rows: list[list[str]]) -> None:
    """``seed_candles``, then the features of every new closed candle, as ``compute_features`` does."""
    from klinepipe.feature_store import compute_pending_features

    seed_candles(engine, rows)
    compute_pending_features(engine)


def _key(value: bytes) -> bytes | None:
    try:
        ev = msgspec.json.decode(value)
        return f"{ev['s']}:{ev['k']['i']}".encode()
    except Exception:  # noqa: BLE001 - malformed test input has no key
        return None


def expected_sma_cross_orders(closes: list[Decimal], fast: int = 10, slow: int = 30) -> list[tuple[int, str]]:
    """(bar index, side) of a long-only strict SMA crossover, in exact decimal arithmetic."""
    def sma(n: int, i: int) -> Decimal | None:
        return sum(closes[i - n + 1 : i + 1]) / n if i >= n - 1 else None

    orders, long = [], False
    for i in range(1, len(closes)):
        f0, f1, s0, s1 = sma(fast, i - 1), sma(fast, i), sma(slow, i - 1), sma(slow, i)
        if None in (f0, f1, s0, s1):
            continue
        if f0 < s0 and f1 > s1 and not long:
            orders.append((i, "BUY"))
            long = True
        elif f0 > s0 and f1 < s1 and long:
            orders.append((i, "SELL"))
            long = False
    return orders
