"""``python -m streaming`` as a process: replay, record -> replay, live with /metrics, and start-up errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from confluent_kafka.admin import AdminClient

from devstack.embedded import free_port
from tests.conftest import ROOT
from tests.fake_binance import FakeBinance
from tests.helpers import read_topic, sample_rows
from tests.fake_binance.ws import FakeStreams

pytestmark = pytest.mark.integration
CAPTURE = ROOT / "data" / "sample" / "BTCUSDT-kline_5m-ws-20210914.jsonl"


def _env(bootstrap: str, topic: str, **extra) -> dict:
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": f"{topic}.dlq",
            "STREAMING_METRICS_PORT": "0", **extra}


def _streaming(*args: str, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streaming", *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_replaying_the_real_capture_publishes_every_frame_and_dead_letters_none(kafka_bootstrap, topic):
    done = _streaming("replay", "--file", str(CAPTURE), "--speed", "max", env=_env(kafka_bootstrap, topic))

    assert done.returncode == 0, done.stderr
    assert "published=49 acked=49 dead_lettered=0" in done.stdout
    assert [v for _, v, _ in read_topic(kafka_bootstrap, topic)] == [line.strip() for line in CAPTURE.read_bytes().splitlines()]


def test_a_replay_file_with_poison_lines_dead_letters_them_and_publishes_the_rest(kafka_bootstrap, topic, tmp_path):
    good = [line.strip() for line in CAPTURE.read_bytes().splitlines() if line.strip()]
    poison = [b'{"e":"kline","E":1,"s":"\xff\xfe"}', b'{"stream":"x","data":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
              b'{"e":"kline","E":1e999}']  # invalid UTF-8 in a string (issue 12), deep nesting, a huge number
    replay = tmp_path / "BTCUSDT-5m.jsonl"
    replay.write_bytes(b"\n".join(good[:20] + poison + good[20:]) + b"\n")

    done = _streaming("replay", "--file", str(replay), "--speed", "60x", env=_env(kafka_bootstrap, topic))

    assert done.returncode == 0, done.stderr
    assert f"published={len(good)} acked={len(good) + len(poison)} dead_lettered={len(poison)}" in done.stdout
    assert [v for _, v, _ in read_topic(kafka_bootstrap, topic)] == good
    dead = read_topic(kafka_bootstrap, f"{topic}.dlq")
    assert [v for _, v, _ in dead] == poison and all(h["error"] for _, _, h in dead)


def test_a_csv_replay_with_bad_rows_dead_letters_each_row_naming_its_line(kafka_bootstrap, topic, tmp_path):
    rows = sample_rows(6)
    lines = [",".join(r).encode() for r in rows]
    lines[2] = lines[2].replace(b",", b",\xff", 1)  # not UTF-8
    lines[4] = b"\xb2" + lines[4][1:]  # a superscript two: isdigit() but not a number
    replay = tmp_path / "BTCUSDT-1m.csv"
    replay.write_bytes(b"open_time,open,high,low,close,volume,close_time\n" + b"\n".join(lines) + b"\n")

    done = _streaming("replay", "--file", str(replay), "--speed", "max", env=_env(kafka_bootstrap, topic))

    assert done.returncode == 0, done.stderr
    assert "published=4 acked=6 dead_lettered=2" in done.stdout
    errors = [h["error"] for _, _, h in read_topic(kafka_bootstrap, f"{topic}.dlq")]
    assert [e.split(":")[0] for e in errors] == ["BTCUSDT-1m.csv line 4", "BTCUSDT-1m.csv line 6"]


def test_record_then_replay_and_live_with_metrics(kafka_bootstrap, topic, tmp_path):
    out = tmp_path / "frames.jsonl"
    metrics_port = free_port()
    with FakeBinance() as rest, FakeStreams(step_ms=15_000, tick=0.05, on_close=rest.seed_klines) as ws:
        rest.add_symbol("BTCUSDT", "BTC", "USDT")
        common = ["--symbols", "BTCUSDT", "--intervals", "1m,5m", "--ws-url", ws.url, "--rest-url", rest.url]
        recorder = _start(["record", *common, "--out", str(out)], _env(kafka_bootstrap, topic))
        live = _start(["live", *common, "--metrics-port", str(metrics_port)], _env(kafka_bootstrap, topic))
        metrics = _scrape(metrics_port, until="streaming_messages_acked_total 2")
        for proc in (recorder, live):
            proc.send_signal(signal.SIGINT)
        rec_out, live_out = recorder.communicate(30)[0], live.communicate(30)[0]

    assert recorder.returncode == 0 and live.returncode == 0, (rec_out, live_out)
    assert "streaming_frames_received_total" in metrics and "streaming_receive_to_ack_seconds_bucket" in metrics
    assert "source=live" in live_out and "stopped; published=" in live_out
    frames = out.read_bytes().splitlines()
    assert len(frames) > 10 and all(f.startswith(b'{"stream":"btcusdt@kline_') for f in frames)
    replay_topic = f"{topic}-replay"
    done = _streaming("replay", "--file", str(out), "--speed", "max", env=_env(kafka_bootstrap, replay_topic))
    assert f"published={len(frames)} acked={len(frames)} dead_lettered=0" in done.stdout, done.stderr
    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert len(topics[replay_topic].partitions) == 6 and f"{replay_topic}.dlq" in topics  # created at start, as configured


def test_unknown_symbols_and_bad_settings_fail_at_start_with_their_name(kafka_bootstrap, topic):
    with FakeBinance() as rest:
        rest.add_symbol("BTCUSDT", "BTC", "USDT")
        unknown = _streaming("live", "--symbols", "BTCUSDT,NOPEUSDT", "--rest-url", rest.url, "--ws-url", "ws://127.0.0.1:9",
                             env=_env(kafka_bootstrap, topic))
    bad = _streaming("live", "--intervals", "1m,7m", env=_env(kafka_bootstrap, topic))

    assert unknown.returncode == 2 and "NOPEUSDT" in unknown.stderr and "BTCUSDT," not in unknown.stderr
    assert bad.returncode == 2 and "STREAMING_INTERVALS" in bad.stderr


def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "streaming", *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _scrape(port: int, until: str, timeout: float = 30.0) -> str:
    """The /metrics text once it contains ``until`` (or whatever it says when ``timeout`` passes)."""
    text, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            pass
        if until in text:
            break
        time.sleep(0.2)
    return text


def test_ctrl_c_while_a_paced_replay_waits_for_its_next_candle_stops_it_at_once(kafka_bootstrap, topic):
    """At the default 60x a 1h candle is due a minute after the last: Ctrl-C in that wait stops the replay then, not
    when the next candle is due (before, the paced sleep ran to its end: up to an hour at 1x)."""
    proc = subprocess.Popen([sys.executable, "-m", "streaming", "replay", "--file", str(ROOT / "data" / "sample" / "BTCUSDT-1h.csv")],
                            env=_env(kafka_bootstrap, topic), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not read_topic(kafka_bootstrap, topic):  # the first candle at once; the next one due 60 s later
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)  # well before the next candle is due
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "stopped; published=1 acked=1 " in out, out
