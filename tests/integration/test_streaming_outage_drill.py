"""Drill: the real tansu broker is killed under a running ``python -m streaming replay`` for a drill's outage
(``KLINEPIPE_DRILL_OUTAGE_S``: 20 s; the issue's drill is 60 s) and started again on the same port. The sidecar does not exit, says so in ONE line (not one per retry) and one on recovery, shows it in
``streaming_dependency_up{dependency="kafka"}`` / ``streaming_outages_total``, and every candle the old broker had
not acknowledged reaches the new one (tansu is memory-only: what it had acknowledged went with it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import msgspec
import pytest

from devstack.embedded import free_port, start_broker
from streaming.kafka_topics import ensure_topics
from tests.conftest import ROOT, SAMPLE
from tests.helpers import read_topic, sample_rows
from tests.outage_drills import OUTAGE_S

pytestmark = pytest.mark.integration
TOPIC = "klines-outage-drill"


def _metrics(port: int) -> dict[str, float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\S+) (\S+)$", text, re.M)} | \
           {"{".join(m[1].split("{")): float(m[2]) for m in re.finditer(r'^(\S+\{[^}]*\}) (\S+)$', text, re.M)}


def _wait_for(port: int, ok, what: str, timeout: float = 180.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = _metrics(port)
        if m and ok(m):
            return m
        time.sleep(0.5)
    raise AssertionError(f"{what}: not reached within {timeout}s; metrics {_metrics(port)}")


def test_the_sidecar_rides_out_a_long_broker_outage_with_one_line_and_loses_nothing_unacknowledged(tmp_path):
    port, metrics_port = free_port(), free_port()
    brokers = [start_broker(port, log_path=tmp_path / "tansu1.log")]
    ensure_topics({"bootstrap.servers": brokers[0].bootstrap_servers}, {TOPIC: 6, f"{TOPIC}.dlq": 1})
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("STREAMING_", "KAFKA_"))},
           "KAFKA_BOOTSTRAP_SERVERS": brokers[0].bootstrap_servers, "KAFKA_TOPIC": TOPIC, "KAFKA_DLQ_TOPIC": f"{TOPIC}.dlq",
           "KAFKA_STALL_TIMEOUT": "5", "STREAMING_METRICS_PORT": str(metrics_port)}
    out = open(tmp_path / "streaming.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "streaming", "replay", "--file", str(SAMPLE / "BTCUSDT-1m.csv.gz"),
                             "--speed", "300x"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    acked = "streaming_messages_acked_total"
    kafka_up = 'streaming_dependency_up{dependency="kafka"}'
    try:
        _wait_for(metrics_port, lambda m: m.get(acked, 0) >= 50, "first acknowledgements")
        brokers[0].stop()
        acked_at_stop = _wait_for(metrics_port, lambda m: m.get(kafka_up) == 0, "the outage seen")[acked]
        time.sleep(OUTAGE_S)
        alive_through_outage = proc.poll() is None
        brokers.append(start_broker(port, log_path=tmp_path / "tansu2.log"))
        ensure_topics({"bootstrap.servers": brokers[1].bootstrap_servers}, {TOPIC: 6, f"{TOPIC}.dlq": 1})
        after = _wait_for(metrics_port, lambda m: m.get(kafka_up) == 1 and m.get(acked, 0) >= acked_at_stop + 100,
                          "recovery")
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        out.seek(0)
        log = out.read()
        topic = read_topic(brokers[1].bootstrap_servers, TOPIC)
    finally:
        if proc.poll() is None:
            proc.kill()
        for b in brokers:
            b.stop()

    assert alive_through_outage and proc.returncode == 0, log[-3000:]
    assert len(re.findall(r"kafka unreachable", log)) == 1, log[-3000:]
    assert len(re.findall(r"kafka is back after", log)) == 1, log[-3000:]
    assert "Traceback" not in log and "|FAIL|" not in log
    assert after['streaming_outages_total{dependency="kafka"}'] == 1
    published = int(re.search(r"stopped; published=(\d+) acked=(\d+)", log)[1])
    assert re.search(rf"stopped; published={published} acked={published} ", log)  # all delivered in the end
    rows = sample_rows(published)
    got = {msgspec.json.decode(v)["k"]["t"] for _, v, _ in topic}
    unacked_at_stop = {int(r[0]) for r in rows[int(acked_at_stop):]}
    assert unacked_at_stop <= got  # nothing the old broker had not acknowledged is lost
