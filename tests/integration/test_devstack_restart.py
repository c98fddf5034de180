"""A second ``make run`` on the same data: a new, empty embedded broker, and the replay going on after the
newest replayed candle stored. Nothing published to the new broker may be skipped or dropped."""

import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from confluent_kafka.admin import AdminClient

from klinepipe.backfill import load_klines
from devstack.restart_recovery import forget_offsets, replay_resume_point
from klinepipe.kline import row_to_kline
from klinepipe.ingest import ingest_batch
from streaming.kafka_topics import ensure_topics
from tests.conftest import ROOT
from tests.helpers import closed_events, produce, sample_rows, write_csv

pytestmark = pytest.mark.integration


def test_the_resume_point_is_the_newest_replayed_event_stored_per_series(engine, database_url):
    assert replay_resume_point(database_url) == ""  # nothing stored: replay from the start

    rows = sample_rows(30)
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1m", int(r[6]) + 1) for r in rows[:20]), source="replay")
    load_klines(engine, (row_to_kline(r, "ETHUSDT", "1m", int(r[6]) + 1) for r in rows[:25]), source="replay")
    load_klines(engine, (row_to_kline(r, "SOLUSDT", "1m", int(r[6]) + 1) for r in rows[20:]), source="backfill")

    assert replay_resume_point(database_url) == f"BTCUSDT:1m={int(rows[19][6]) + 1},ETHUSDT:1m={int(rows[24][6]) + 1}"


def _replay(files: list, bootstrap: str, topic: str, after: str) -> str:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC": topic, "KAFKA_DLQ_TOPIC": f"{topic}.dlq",
           "STREAMING_METRICS_PORT": "0", "STREAMING_REPLAY_AFTER": after}
    done = subprocess.run([sys.executable, "-m", "streaming", "replay", "--file", ",".join(map(str, files)), "--speed", "max"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_restart_resumes_each_series_after_its_own_newest_candle_with_no_hole(engine, database_url, kafka_bootstrap,
                                                                                topic, tmp_path):
    """Issue 13.2: the 1m demo replay stood at 2024-03-01 00:20 when the 1h file (to 2024-03-22) was replayed in;
    the next start resumed *both* after the 1h series' newest event and the 1m series lost 20 days."""
    config = {"bootstrap.servers": kafka_bootstrap}
    minutes, hours = sample_rows(60), sample_rows(7090, "BTCUSDT-1h.csv")
    one_m = tmp_path / "first" / "BTCUSDT-1m.csv"
    one_m.parent.mkdir()
    _replay([write_csv(one_m, minutes[:20]), ROOT / "data" / "sample" / "BTCUSDT-1h.csv"], kafka_bootstrap, topic, "")
    ingest_batch(engine, config, topic=topic)

    after = replay_resume_point(database_url)  # what make run hands the restarted sidecar
    out = _replay([write_csv(tmp_path / "BTCUSDT-1m.csv", minutes), ROOT / "data" / "sample" / "BTCUSDT-1h.csv"],
                  kafka_bootstrap, topic, after)
    ingest_batch(engine, config, topic=topic)

    assert "resuming after 2024-03-01T00:20:00Z" in out and "resuming after 2024-03-22T10:00:00Z" in out, out
    with engine.connect() as c:
        series = c.execute(sa.text(
            "SELECT interval, count(*), min(open_time), max(open_time),"
            " extract(epoch FROM max(open_time) - min(open_time))::bigint / CASE interval WHEN '1m' THEN 60 ELSE 3600 END + 1"
            " FROM market.candles GROUP BY interval ORDER BY interval")).fetchall()
    (h, h_count, _, _, h_span), (m, m_count, _, _, m_span) = series
    assert (h, m) == ("1h", "1m")
    assert (m_count, m_span) == (60, 60)  # every minute of the longer file: none skipped, no hole
    assert (h_count, h_span) == (7090, 7090)


def _recreate(bootstrap: str, topic: str) -> None:
    """As a restarted memory-only broker: the topic is empty and its offsets begin at 0 again."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.delete_topics([topic]).values():
        f.result()
    deadline = time.monotonic() + 30
    while topic in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    ensure_topics({"bootstrap.servers": bootstrap}, {topic: 6})


def test_after_a_new_broker_every_message_loads_and_every_reject_is_kept(engine, database_url, kafka_bootstrap, topic,
                                                                          monkeypatch):
    config, rows = {"bootstrap.servers": kafka_bootstrap}, sample_rows(40)
    produce(kafka_bootstrap, topic, closed_events(rows[:20]) + [b"first run: not json"], keys=[b"BTCUSDT:1m"] * 21)
    ingest_batch(engine, config, topic=topic)
    with engine.begin() as c:  # another pipeline's offsets are not ours to drop
        c.execute(sa.text("INSERT INTO etl.kafka_offsets (consumer, topic, partition, next_offset) VALUES ('x', 'other', 0, 7)"))
    _recreate(kafka_bootstrap, topic)
    produce(kafka_bootstrap, topic, closed_events(rows[20:]) + [b"second run: not json"], keys=[b"BTCUSDT:1m"] * 21)

    monkeypatch.setenv("KAFKA_TOPIC", topic)
    dropped = forget_offsets(database_url)
    result = ingest_batch(engine, config, topic=topic)

    assert dropped == 6 and (result.candles, result.dead_letters) == (20, 1)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM market.candles")).scalar() == 40
        raws = c.execute(sa.text('SELECT raw, "offset" FROM etl.dead_letters ORDER BY id')).fetchall()
        assert c.execute(sa.text("SELECT next_offset FROM etl.kafka_offsets WHERE consumer = 'x'")).scalar() == 7
    assert [(bytes(r.raw), r.offset) for r in raws] == [(b"first run: not json", 20), (b"second run: not json", 20)]


def test_a_recreated_topic_is_read_from_its_start_whatever_its_length(engine, kafka_bootstrap, topic, caplog):
    """The stored offsets carry the topic's id: offsets of an earlier incarnation are not used, even when the
    new log is already longer than them (no out-of-range error to reset on, on any broker); each is reported once."""
    config, rows = {"bootstrap.servers": kafka_bootstrap}, sample_rows(90)
    produce(kafka_bootstrap, topic, closed_events(rows[:10]), keys=[b"BTCUSDT:1m"] * 10)
    ingest_batch(engine, config, topic=topic)
    _recreate(kafka_bootstrap, topic)
    produce(kafka_bootstrap, topic, closed_events(rows[10:]), keys=[b"BTCUSDT:1m"] * 80)  # 80 > the stored 10

    with caplog.at_level("WARNING", logger="klinepipe.kafka_offsets"):
        result = ingest_batch(engine, config, topic=topic)
    again = ingest_batch(engine, config, topic=topic)

    warned = [r.getMessage() for r in caplog.records if "earlier incarnation" in r.getMessage()]
    assert warned and len(warned) == len(set(warned)), warned
    assert (result.candles, again.messages) == (80, 0)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM market.candles")).scalar() == 90
        assert c.execute(sa.text("SELECT count(DISTINCT topic_id) FROM etl.kafka_offsets")).scalar() == 1
