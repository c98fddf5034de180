"""The stack can be found (issue 13.5): the CLIs read the running stack's connection file when their settings
are unset, and say so; ``python -m devstack status`` shows each part. Real CLIs, real PostgreSQL and tansu."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from klinepipe import connection_file
from klinepipe.backfill import load_klines
from klinepipe.kline import row_to_kline
from klinepipe.ingest import ingest_batch
from tests.conftest import ROOT, SAMPLE
from tests.helpers import sample_rows

pytestmark = pytest.mark.integration
UNSET = ("DATABASE_URL", "TRADER_DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC", "KAFKA_DLQ_TOPIC")


def _env(data_dir, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    return {**env, "KLINEPIPE_DATA_DIR": str(data_dir), "STREAMING_METRICS_PORT": "0", "TRADER_METRICS_PORT": "0", **extra}


def _run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)


@pytest.fixture
def stack_file(tmp_path, database_url, kafka_bootstrap):
    """The file a running ``make run`` (here: this test's own, live pid) leaves for other shells."""
    written = connection_file.write({"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
                                    pid=os.getpid(), since=datetime.now(timezone.utc), directory=tmp_path,
                                    parts={"trader": os.getpid()}, restarts={"trader": 2})
    return written


def test_the_file_is_private_and_a_shell_can_source_it(stack_file, database_url):
    assert stat.S_IMODE(stack_file.stat().st_mode) == 0o600
    out = subprocess.run(["sh", "-c", f". {stack_file} && printf %s \"$DATABASE_URL\""], capture_output=True, text=True,
                         check=True).stdout
    assert out == database_url


def test_the_clis_use_the_running_stacks_settings_and_say_so(stack_file, tmp_path, engine, topic):
    rows = sample_rows(200)
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1m", int(r[6]) + 1) for r in rows), source="replay")
    env = _env(tmp_path, KAFKA_TOPIC=topic, KAFKA_DLQ_TOPIC=f"{topic}.dlq")

    replay = _run("streaming", "replay", "--file", str(SAMPLE / "BTCUSDT-kline_5m-ws-20210914.jsonl"), "--speed", "max",
                  env=env)
    trader = _run("trader", "status", env=env)
    backtest = _run("trader", "backtest", "--symbol", "BTCUSDT", "--interval", "1m", "--out", str(tmp_path / "bt"),
                    "--no-html", "--no-png", env=env)

    assert replay.returncode == 0 and "published=49 acked=49" in replay.stdout, replay.stdout + replay.stderr
    assert f"streaming: using the running stack's KAFKA_BOOTSTRAP_SERVERS from {stack_file}" in replay.stderr
    assert trader.returncode == 0, trader.stdout + trader.stderr
    assert f"trader: using the running stack's DATABASE_URL from {stack_file} (make run, pid {os.getpid()})" in trader.stderr
    assert "Field required" not in trader.stderr
    assert backtest.returncode == 0, backtest.stdout + backtest.stderr
    assert f"backtest: using the running stack's DATABASE_URL from {stack_file}" in backtest.stderr


def test_settings_that_are_set_win_over_the_file(stack_file, tmp_path, database_url):
    trader = _run("trader", "status", env=_env(tmp_path, DATABASE_URL=database_url))

    assert trader.returncode == 0 and "using the running stack" not in trader.stderr


def test_a_stale_file_is_ignored_with_a_word(tmp_path, database_url):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    connection_file.write({"DATABASE_URL": database_url}, pid=dead.pid, since=datetime.now(timezone.utc),
                          directory=tmp_path)

    trader = _run("trader", "status", env=_env(tmp_path))

    assert trader.returncode == 2
    assert f"trader: ignoring {tmp_path / 'stack.env'}: the stack that wrote it (pid {dead.pid}) is not running" in trader.stderr


def test_status_shows_each_part_and_the_newest_data(stack_file, tmp_path, engine, kafka_bootstrap, topic):
    rows = sample_rows(30)
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1m", int(r[6]) + 1) for r in rows), source="replay")
    from tests.helpers import closed_events, produce

    produce(kafka_bootstrap, topic, closed_events(sample_rows(10)))
    ingest_batch(engine, {"bootstrap.servers": kafka_bootstrap}, topic=topic)
    produce(kafka_bootstrap, topic, closed_events(sample_rows(40)[10:]))  # 30 messages not loaded yet

    done = _run("devstack", "status", env=_env(tmp_path, KAFKA_TOPIC=topic))

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"settings from {stack_file}" in out

    def line(part: str) -> str:
        return next(x for x in out.splitlines() if x.strip().startswith(part))

    assert re.search(rf"running\s+pid {os.getpid()}, since \S+Z, restarts 0", line("make run"))
    assert re.search(r"running\s+pid \d+, since \S+Z, restarts 2", line("trader"))
    assert re.search(r"streaming\s+not started", line("streaming"))
    assert re.search(r"postgres\s+answering\s+since \S+Z", line("postgres"))
    assert re.search(r"BTCUSDT 1m\s+opened 2024-03-01T00:29:00Z \(\d+\.\d d ago\), 30 candles", line("newest candle"))
    assert re.search(r"newest feature\s+none", line("newest feature")) and re.search(r"none", line("newest order"))
    assert re.search(r"answering\s+\S+; topic klines-test-\w+, 6 partitions", line("kafka"))
    assert re.search(r"consumer lag\s+30 messages", line("consumer lag"))
    assert "Traceback" not in out + done.stderr


def test_without_a_stack_the_trader_says_what_to_do(tmp_path):
    trader = _run("trader", "status", env=_env(tmp_path))

    assert trader.returncode == 2 and "Traceback" not in trader.stderr
    assert f"no running make-run stack ({tmp_path / 'stack.env'}): start make run, or set DATABASE_URL=" in trader.stderr


def test_status_without_a_stack_says_so_and_fails(tmp_path):
    done = _run("devstack", "status", env=_env(tmp_path))

    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert "no make-run stack found" in done.stdout and "DATABASE_URL is not set" in done.stdout


def test_without_a_stack_or_a_broker_streaming_says_where_it_looked_not_a_traceback(tmp_path):
    from devstack.embedded import free_port

    nobody = f"127.0.0.1:{free_port()}"
    replay = _run("streaming", "replay", "--file", str(SAMPLE / "BTCUSDT-1h.csv"), "--speed", "max",
                  env=_env(tmp_path, KAFKA_BOOTSTRAP_SERVERS=nobody, STREAMING_STARTUP_TIMEOUT="3"))

    assert replay.returncode == 1 and "Traceback" not in replay.stderr, replay.stderr[-2000:]
    assert f"streaming: no Kafka broker answered at KAFKA_BOOTSTRAP_SERVERS={nobody}" in replay.stderr
    assert f"start make run (its broker is found through {tmp_path / 'stack.env'})" in replay.stderr
