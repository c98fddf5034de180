"""Kline close -> feature row committed, on the embedded make-run stack (Airflow's four components), for each
ingest schedule.

For each mode of ``KLINEPIPE_INGEST_SCHEDULE`` (``cron``: every minute; ``event``: the Asset watcher that
fires when a closed kline waits; ``both``: the default) the stack is started without its sidecars; this
process then publishes, at real-time pace for 1-minute candles (one closing event per series per minute),
the closing events of real candles for ``SERIES`` series, and polls ``market.features`` for the rows.
Latency = first time the committed row is visible - time its closing event was acknowledged by the broker.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import msgspec
import numpy as np
import sqlalchemy as sa
from confluent_kafka import Producer

from streaming.kafka_topics import ensure_topics
from streaming.replay import csv_row_to_event

SERIES = int(os.environ.get("BENCH_LATENCY_SERIES", "10"))
MINUTES = int(os.environ.get("BENCH_LATENCY_MINUTES", "4"))
MODES = os.environ.get("BENCH_LATENCY_MODES", "cron,event").split(",")


def _publish_minutes(bootstrap: str, published: dict, stop: threading.Event) -> None:
    from tests.helpers import sample_rows  # real candles

    rows = sample_rows(MINUTES + 1)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    ensure_topics({"bootstrap.servers": bootstrap}, {"binance.klines": 6, "binance.klines.dlq": 1})
    for minute, row in enumerate(rows):
        if stop.is_set():
            return
        for s in range(SERIES):
            symbol = f"L{s:02d}USDT"
            key = (symbol, int(row[0]))

            def acked(err, _msg, key=key):
                if err is None:
                    published[key] = time.time()

            producer.produce("binance.klines", msgspec.json.encode(csv_row_to_event(row, symbol, "1m")),
                             f"{symbol}:1m".encode(), headers=[("source", b"replay")], on_delivery=acked)
        producer.flush()
        stop.wait(60)


def _measure(mode: str) -> list[float]:
    from devstack.stack import Stack

    with tempfile.TemporaryDirectory(prefix="kp-latency-") as tmp:
        os.environ.update({"KLINEPIPE_INGEST_SCHEDULE": mode, "KLINEPIPE_DATA_DIR": tmp})
        import devstack.stack as devstack

        devstack.DATA, devstack.LOGS, devstack.AIRFLOW_HOME = Path(tmp), Path(tmp) / "logs", Path(tmp) / "airflow"
        devstack.LOGS.mkdir(parents=True, exist_ok=True)
        stack = Stack(with_sidecars=False)
        try:
            stack.start()
            time.sleep(20)  # let the dag-processor parse and register the DAGs and the watcher
            published, seen, stop = {}, {}, threading.Event()
            producer = threading.Thread(target=_publish_minutes, args=(stack.bootstrap, published, stop), daemon=True)
            producer.start()
            engine = sa.create_engine(stack.database_url.replace("postgresql://", "postgresql+psycopg2://"))
            deadline = time.time() + 60 * (MINUTES + 1) + 90
            while time.time() < deadline and (len(seen) < SERIES * (MINUTES + 1)):
                with engine.connect() as c:
                    for symbol, ms in c.execute(sa.text(
                            "SELECT symbol, (extract(epoch FROM open_time) * 1000)::bigint FROM market.features")):
                        seen.setdefault((symbol, int(ms)), time.time())
                time.sleep(0.25)
            stop.set()
            engine.dispose()
        finally:
            stack.stop()
    return [seen[k] - published[k] for k in published if k in seen]


def main() -> int:
    results = {}
    for mode in MODES:
        print(f"measuring ingest schedule '{mode}': {SERIES} series x {MINUTES + 1} closing events at real-time pace ...", flush=True)
        results[mode] = _measure(mode)
    for mode, lat in results.items():
        a = np.array(lat)
        if len(a) == 0:
            print(f"{mode:6s}: no feature rows observed")
            continue
        print(f"{mode:6s}: n={len(a):3d}  p50={np.percentile(a, 50):5.1f}s  p95={np.percentile(a, 95):5.1f}s  "
              f"max={a.max():5.1f}s  (goal p95 <= 20 s)")
    return 0
