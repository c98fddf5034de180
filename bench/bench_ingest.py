"""Kafka -> PostgreSQL load (Airflow scheduling excluded): klinepipe's micro-batch vs a pandas ``to_sql`` baseline.

Also printed, to show what bounds the figure: the CPU each part used (python, postgres, broker) and the floor
their sum sets on 2 cores; and PostgreSQL's share timed alone (COPY + guarded merge on one backend), which
bounds one loader, since the issue asks for one transaction per batch.

Measured twice: one loader over all partitions (``ingest_klines`` with ``tasks=1``, the default here), and
two loaders in parallel processes, each over half of the partitions (``tasks=2``: two mapped load tasks).

Data: the bundled real 1-minute klines (BTCUSDT spot + four USD-M series, 111k candles), relabelled under
extra symbol names to reach the target count, published as closed kline events to a 6-partition topic.
Both loaders read the same messages from the broker and write the same rows to PostgreSQL:
- klinepipe: ``ingest_batch`` (read from stored offsets, msgspec parse + validation, newest-per-candle,
  COPY into staging, guarded merge, offsets, one commit);
- baseline: consume (with the same librdkafka fetch settings, so only the load differs), ``json.loads``
  each message, build a DataFrame, ``DataFrame.to_sql`` (append).
"""

from __future__ import annotations

import csv
import gzip
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import msgspec
import pandas as pd
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.services import CpuBudget, services
from klinepipe.candle_store import copy_buffer, merge_copy
from klinepipe.db import make_engine
from klinepipe.ingest import ingest_batch
from klinepipe.kafka_batch import FETCH_SETTINGS
from klinepipe.kline import parse_kline_event
from streaming.kafka_topics import ensure_topics
from streaming.replay import csv_row_to_event

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
FILES = ["BTCUSDT-1m.csv.gz", "futures_um/ALGOUSDT-1m.csv.gz", "futures_um/AVAXUSDT-1m.csv.gz",
         "futures_um/LINKUSDT-1m.csv.gz", "futures_um/NEARUSDT-1m.csv.gz"]
TARGET = 300_000


def _events(target: int) -> list[tuple[bytes, bytes]]:
    series = []
    for name in FILES:
        with gzip.open(SAMPLE / name, "rt") as f:
            rows = [r for r in csv.reader(f) if r and r[0].isdigit()]
        series.append((Path(name).name.split("-")[0], rows))
    out, copy = [], 0
    while len(out) < target:
        for symbol, rows in series:
            sym = symbol if copy == 0 else f"{symbol[:-4]}{copy}USDT"
            for r in rows:
                out.append((f"{sym}:1m".encode(), msgspec.json.encode(csv_row_to_event(r, sym, "1m"))))
        copy += 1
    return out[:target]


def _publish(bootstrap: str, topic: str, events) -> None:
    ensure_topics({"bootstrap.servers": bootstrap}, {topic: 6})
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4",
                  "queue.buffering.max.messages": 1_000_000, "enable.idempotence": True})
    for key, value in events:
        while True:
            try:
                p.produce(topic, value, key, headers=[("source", b"replay")])
                break
            except BufferError:
                p.poll(0.1)
    p.flush()


def _baseline(url: str, bootstrap: str, topic: str, n: int) -> float:
    engine = make_engine(url)
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE market.candles_baseline (LIKE market.candles INCLUDING DEFAULTS)")
    t0 = time.perf_counter()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "baseline", "enable.auto.commit": False, **FETCH_SETTINGS})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
    rows = []
    while len(rows) < n:
        for m in consumer.consume(10_000, timeout=1.0):
            e = json.loads(m.value())
            k = e["k"]
            rows.append({"symbol": e["s"], "interval": k["i"], "open_time": pd.Timestamp(k["t"], unit="ms", tz="UTC"),
                         "close_time": pd.Timestamp(k["T"], unit="ms", tz="UTC"), "open": k["o"], "high": k["h"],
                         "low": k["l"], "close": k["c"], "volume": k["v"], "is_closed": k["x"],
                         "event_time": pd.Timestamp(e["E"], unit="ms", tz="UTC"), "source": "replay"})
    consumer.close()
    pd.DataFrame(rows).to_sql("candles_baseline", engine, schema="market", if_exists="append", index=False, chunksize=10_000)
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed


def _load_group(args: tuple[str, str, str, list[int]]) -> int:
    url, bootstrap, topic, partitions = args
    engine = make_engine(url)
    try:
        return ingest_batch(engine, {"bootstrap.servers": bootstrap}, topic=topic, partitions=partitions,
                            max_messages=10_000_000, max_seconds=600).candles
    finally:
        engine.dispose()


def _parallel(url: str, bootstrap: str, topic: str) -> tuple[int, float]:
    engine = make_engine(url)
    with engine.begin() as c:
        c.exec_driver_sql("TRUNCATE market.candles, etl.kafka_offsets")
    engine.dispose()
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_warm, [0, 1]))
        t0 = time.perf_counter()
        n = sum(pool.map(_load_group, [(url, bootstrap, topic, [0, 2, 4]), (url, bootstrap, topic, [1, 3, 5])]))
        return n, time.perf_counter() - t0


def _postgres_alone(url: str, events) -> float:
    """PostgreSQL's share alone: the same rows COPY-ed and merged (``merge_copy``) on one backend, into an
    empty table, with nothing else running. The issue asks for one transaction, so one backend: no loader
    can be faster than this, however fast its Python."""
    buffer = copy_buffer((parse_kline_event(value), "replay") for _, value in events)
    engine = make_engine(url)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute("TRUNCATE market.candles")
            raw.commit()
            t0 = time.perf_counter()
            merge_copy(cur, buffer)
            raw.commit()
            return time.perf_counter() - t0
    finally:
        raw.close()
        engine.dispose()


def _warm(_: int) -> None:
    import klinepipe.ingest  # noqa: F401 - imports outside the timed part, as a running task has them


def main() -> int:
    events = _events(TARGET)
    with services() as (url, bootstrap):
        topic = "bench.klines"
        t = time.perf_counter()
        _publish(bootstrap, topic, events)
        print(f"published {len(events):,} closed kline events in {time.perf_counter() - t:.1f}s")
        engine = make_engine(url)
        with CpuBudget() as cpu:
            t0 = time.perf_counter()
            result = ingest_batch(engine, {"bootstrap.servers": bootstrap}, topic=topic, max_messages=10_000_000, max_seconds=600)
            ours = time.perf_counter() - t0
        engine.dispose()
        assert result.candles == len(events), result
        n2, two = _parallel(url, bootstrap, topic)
        assert n2 == len(events), n2
        base = _baseline(url, bootstrap, topic, len(events))
        pg_alone = _postgres_alone(url, events)
    n = len(events)
    print(f"klinepipe, 1 loader    : {n:,} candles in {ours:6.2f}s = {n / ours:10,.0f} candles/s")
    print(f"  its {cpu.line(n, 'candles')}")
    print(f"klinepipe, 2 loaders   : {n:,} candles in {two:6.2f}s = {n / two:10,.0f} candles/s (tasks=2: two mapped load tasks)")
    print(f"pandas to_sql baseline : {n:,} candles in {base:6.2f}s = {n / base:10,.0f} candles/s")
    print(f"PostgreSQL alone       : COPY + guarded merge of the same rows on one backend {pg_alone:.2f}s: one loader (one"
          f" transaction) cannot pass {n / pg_alone:,.0f} candles/s = x{base / pg_alone:.1f} the baseline, however fast its Python")
    print(f"ratio                  : 1 loader {base / ours:.1f}x, 2 loaders {base / two:.1f}x (goals: >= 100,000 candles/s, >= 10x)")
    return 0
