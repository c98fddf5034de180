"""``python -m streaming demo`` (issue 13.3): the bundled candles looped on the present's clock, at high speed,
across laps, and a restart that goes on after the newest candle without a hole or an overlap."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal

import msgspec
import pytest

from devstack.embedded import free_port
from tests.conftest import ROOT
from tests.helpers import read_topic, sample_rows, write_csv

pytestmark = pytest.mark.integration
MINUTE, SPEED = 60_000, 600  # 10 one-minute candles a second


def _demo(tmp_path, bootstrap: str, topic: str, until: int, after: str = "") -> tuple[str, list]:
    """Run the demo sidecar until the topic holds ``until`` messages; its output and the messages."""
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": f"{topic}.dlq",
           "STREAMING_METRICS_PORT": str(port), "STREAMING_DEMO_HISTORY": "0", "STREAMING_REPLAY_AFTER": after,
           "STREAMING_REPLAY_FILES": str(write_csv(tmp_path / "BTCUSDT-1m.csv", sample_rows(7)))}
    proc = subprocess.Popen([sys.executable, "-m", "streaming", "demo", "--speed", f"{SPEED}x"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while _acked(port) < until:  # the sidecar's own count of messages the broker acknowledged
            assert proc.poll() is None and time.monotonic() < deadline, "the demo sidecar stopped or stalled"
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    messages = read_topic(bootstrap, topic)  # read once the sidecar is done: every message it published
    return out, sorted(messages, key=lambda m: msgspec.json.decode(m[1])["k"]["t"])


def _acked(port: int) -> int:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0
    found = re.search(r"^streaming_messages_acked_total (\d+)", text, re.M)
    return int(found.group(1)) if found else 0


def test_the_demo_market_closes_candles_on_its_clock_across_laps_and_resumes_without_a_hole(kafka_bootstrap, topic,
                                                                                             tmp_path):
    out, messages = _demo(tmp_path, kafka_bootstrap, topic, until=40)  # 7 rows: a lap every 7 candles

    assert "DEMO MARKET BTCUSDT 1m, not live prices" in out and "replayed in a loop" in out
    start = int(re.search(r"demo market clock at 600x the wall clock from \S+ \(epoch ms (\d+)\)", out).group(1))
    events = [msgspec.json.decode(v) for _, v, _ in messages]
    opens = [e["k"]["t"] for e in events]
    assert opens == list(range(opens[0], opens[0] + len(opens) * MINUTE, MINUTE))  # one a minute, none back, none missing
    assert start < events[0]["E"] <= start + MINUTE  # shifted to the present: the first candle closes first
    for (_, _, headers), e in zip(messages, events):
        published_at = int(headers["received_at"]) + 1
        assert start + (published_at - start) * SPEED >= e["E"], "published before it closed on the demo clock"
        assert headers["source"] == "replay" and e["k"]["x"] is True
    rows, laps = sample_rows(7), len(events) // 7
    assert laps >= 5
    for prev, nxt in zip(events, events[1:]):  # at every lap boundary the new lap opens at the last close
        if (nxt["k"]["t"] // MINUTE) % 7 == 0:
            assert nxt["k"]["o"] == prev["k"]["c"] in (rows[0][1], rows[-1][4])
    for e in events:
        k = e["k"]
        o, h, lo, c = (Decimal(k[f]) for f in "ohlc")
        assert lo <= min(o, c) and max(o, c) <= h

    newest = events[-1]["E"]
    again_topic = f"{topic}-again"
    out2, again = _demo(tmp_path, kafka_bootstrap, again_topic, until=5, after=f"BTCUSDT:1m={newest}")

    assert "going on after the newest stored candle" in out2
    assert msgspec.json.decode(again[0][1])["k"]["t"] == newest  # the candle after the newest stored: no hole, no overlap
