"""Recovery: ``python -m klinepipe.rebuild from-topic`` rebuilds market.candles from the topic, from offset 0, into
a fresh database, and its checksum equals the original's (every row, every column but ingested_at)."""

from __future__ import annotations

import os
import subprocess
import sys

from klinepipe.ingest import ingest_batch
from klinepipe.rebuild import candles_checksum
from tests.conftest import ROOT, _fresh_database
from tests.helpers import SAMPLE, closed_events, produce, sample_rows

CAPTURE = SAMPLE / "BTCUSDT-kline_5m-ws-20210914.jsonl"  # in-progress updates and closes, as streamed


def _rebuild(what: str, database_url: str, kafka_bootstrap: str, topic: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC": topic}
    return subprocess.run([sys.executable, "-m", "klinepipe.rebuild", what], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_the_candles_rebuilt_from_offset_0_into_a_fresh_database_equal_the_original(
        engine, database_url, pg_admin_url, kafka_bootstrap, topic):
    produce(kafka_bootstrap, topic, closed_events(sample_rows(300)))
    produce(kafka_bootstrap, topic, [line.encode() for line in CAPTURE.read_text().splitlines()[:400]])
    produce(kafka_bootstrap, topic, closed_events(sample_rows(50), symbol="ETHUSDT"))
    config = {"bootstrap.servers": kafka_bootstrap}
    ingest_batch(engine, config, topic=topic, max_messages=250)  # the original, loaded in several batches
    while ingest_batch(engine, config, topic=topic, max_messages=250).messages:
        pass
    rows, digest = candles_checksum(engine)
    assert rows > 350

    fresh = _fresh_database(pg_admin_url, "kp_rebuild")
    done = _rebuild("from-topic", fresh, kafka_bootstrap, topic)
    original = _rebuild("checksum", database_url, kafka_bootstrap, topic)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == original.stdout.splitlines()[-1] == f"market.candles: {rows} rows, checksum {digest}"
    again = _rebuild("from-topic", fresh, kafka_bootstrap, topic)  # not into a database that holds candles
    assert again.returncode == 2 and "must be fresh" in again.stderr, again.stderr
