"""Shared test helpers: real sample data, producing events, and an independent crossover model."""

from __future__ import annotations

import csv
import gzip
from decimal import Decimal
from pathlib import Path

import msgspec
from confluent_kafka import Producer

from streaming.kafka_sink import KafkaSink
from streaming.kafka_sink_state import OutgoingRecord
from streaming.replay import csv_row_to_event

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"


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
