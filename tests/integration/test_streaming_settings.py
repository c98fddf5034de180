"""Every bad setting of the streaming sidecar gives ONE line naming it and exit 2; an unreachable dependency gives
one line saying how long it waited and exit 1. Never a traceback, never librdkafka's log lines (the real CLI,
``python -m streaming``, as a process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devstack.embedded import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
CAPTURE = ROOT / "data" / "sample" / "BTCUSDT-kline_5m-ws-20210914.jsonl"

# (environment, CLI arguments, the setting the one line must name); each exits 2 before reaching any dependency
BAD_VALUES = [
    ({"STREAMING_MODE": "fast"}, [], "STREAMING_MODE"),
    ({"STREAMING_SYMBOLS": "BTC-USDT"}, ["live"], "STREAMING_SYMBOLS"),
    ({"STREAMING_UNIVERSE": "US DT"}, ["live"], "STREAMING_UNIVERSE"),
    ({"STREAMING_UNIVERSE_LIMIT": "-1"}, ["live"], "STREAMING_UNIVERSE_LIMIT"),
    ({"STREAMING_INTERVALS": "1m,7m"}, ["live"], "STREAMING_INTERVALS"),
    ({"STREAMING_WS_URL": "ftp://stream.binance.com"}, ["live"], "STREAMING_WS_URL"),
    ({"BINANCE_REST_URL": "api.binance.com"}, ["live"], "BINANCE_REST_URL"),
    ({"STREAMING_URL_FORM": "compact"}, ["live"], "STREAMING_URL_FORM"),
    ({"STREAMING_STREAMS_PER_CONNECTION": "2000"}, ["live"], "STREAMING_STREAMS_PER_CONNECTION"),
    ({"STREAMING_CHECK_SYMBOLS": "maybe"}, ["live"], "STREAMING_CHECK_SYMBOLS"),
    ({"STREAMING_CONNECT_TIMEOUT": "0"}, ["live"], "STREAMING_CONNECT_TIMEOUT"),
    ({"STREAMING_SILENCE_TIMEOUT": "-1"}, ["live"], "STREAMING_SILENCE_TIMEOUT"),
    ({"STREAMING_ROTATE_AFTER": "a day"}, ["live"], "STREAMING_ROTATE_AFTER"),
    ({"STREAMING_OVERLAP_TIMEOUT": "0"}, ["live"], "STREAMING_OVERLAP_TIMEOUT"),
    ({"STREAMING_BACKOFF_INITIAL": "0"}, ["live"], "STREAMING_BACKOFF_INITIAL"),
    ({"STREAMING_BACKOFF_MAX": "0.1"}, ["live"], "STREAMING_BACKOFF_MAX"),
    ({"STREAMING_HEALTHY_AFTER": "0"}, ["live"], "STREAMING_HEALTHY_AFTER"),
    ({"STREAMING_CONNECT_ATTEMPTS_PER_5MIN": "301"}, ["live"], "STREAMING_CONNECT_ATTEMPTS_PER_5MIN"),
    ({"STREAMING_CONTROL_MESSAGES_PER_SECOND": "6"}, ["live"], "STREAMING_CONTROL_MESSAGES_PER_SECOND"),
    ({"STREAMING_SUBSCRIBE_BATCH": "0"}, ["live"], "STREAMING_SUBSCRIBE_BATCH"),
    ({"STREAMING_BACKFILL": "perhaps"}, ["live"], "STREAMING_BACKFILL"),
    ({"STREAMING_BACKFILL_CONCURRENCY": "0"}, ["live"], "STREAMING_BACKFILL_CONCURRENCY"),
    ({"STREAMING_METRICS_PORT": "70000"}, ["live"], "STREAMING_METRICS_PORT"),
    ({"STREAMING_METRICS_HOST": "not-an-address"}, ["live"], "STREAMING_METRICS_HOST"),
    ({}, ["record", "--symbols", "BTCUSDT"], "STREAMING_RECORD_OUT"),
    ({"STREAMING_RECORD_OUT": "/nonexistent/dir/frames.jsonl"}, ["record"], "STREAMING_RECORD_OUT"),
    ({"STREAMING_REPLAY_FILES": "/nonexistent.csv"}, ["replay"], "STREAMING_REPLAY_FILES"),
    ({"STREAMING_REPLAY_FILES": str(ROOT / "README.md")}, ["replay"], "STREAMING_REPLAY_FILES"),
    ({"STREAMING_REPLAY_SPEED": "fast"}, ["replay"], "STREAMING_REPLAY_SPEED"),
    ({"STREAMING_REPLAY_SPEED": "-2x"}, ["replay"], "STREAMING_REPLAY_SPEED"),
    ({"STREAMING_REPLAY_LOOP": "sometimes"}, ["replay"], "STREAMING_REPLAY_LOOP"),
    ({"STREAMING_REPLAY_AFTER": "yesterday"}, ["replay"], "STREAMING_REPLAY_AFTER"),
    ({"STREAMING_STARTUP_TIMEOUT": "0"}, ["replay"], "STREAMING_STARTUP_TIMEOUT"),
    ({"KAFKA_TOPIC": "klines with spaces"}, ["replay"], "KAFKA_TOPIC"),
    ({"KAFKA_DLQ_TOPIC": "dlq/klines"}, ["replay"], "KAFKA_DLQ_TOPIC"),
    ({"KAFKA_PARTITIONS": "0"}, ["replay"], "KAFKA_PARTITIONS"),
    ({"KAFKA_REPLICATION_FACTOR": "three"}, ["replay"], "KAFKA_REPLICATION_FACTOR"),
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, ["replay"], "KAFKA_SECURITY_PROTOCOL"),
    ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, ["replay"], "KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, ["replay"], "KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}, ["replay"], "KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM"}, ["replay"], "KAFKA_AWS_REGION"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"}, ["replay"], "KAFKA_SSL_CA_LOCATION"),
    ({"KAFKA_QUEUE_MAX_MESSAGES": "10"}, ["replay"], "KAFKA_QUEUE_MAX_MESSAGES"),
    ({"KAFKA_QUEUE_MAX_KBYTES": "1"}, ["replay"], "KAFKA_QUEUE_MAX_KBYTES"),
    ({"KAFKA_MESSAGE_TIMEOUT_MS": "-1"}, ["replay"], "KAFKA_MESSAGE_TIMEOUT_MS"),
    ({"KAFKA_LINGER_MS": "soon"}, ["replay"], "KAFKA_LINGER_MS"),
    ({"KAFKA_STALL_TIMEOUT": "0"}, ["replay"], "KAFKA_STALL_TIMEOUT"),
    ({"KAFKA_CONFIG": "client.id=klinepipe"}, ["replay"], "KAFKA_CONFIG"),
    ({"KAFKA_CONFIG": '{"client.id": {"nested": 1}}'}, ["replay"], "KAFKA_CONFIG"),
    ({"KAFKA_CONFIG": '{"no.such.property": 1}'}, ["replay"], "KAFKA_CONFIG"),
    ({"KAFKA_CONFIG": '{"acks": "most"}'}, ["replay"], "KAFKA_CONFIG"),
]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMING_", "KAFKA_", "BINANCE_REST_URL"))}
    return {**env, "STREAMING_METRICS_PORT": "0", "STREAMING_REPLAY_FILES": str(CAPTURE), "STREAMING_REPLAY_SPEED": "max",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", **extra}


def _streaming(args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streaming", *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "|FAIL|" not in stderr and "%3|" not in stderr  # librdkafka's own lines
    return lines[0]


@pytest.mark.parametrize("env,args,setting", BAD_VALUES, ids=[f"{s}={next(iter(e.values()), '')}"[:60] for e, _, s in BAD_VALUES])
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(env, args, setting):
    done = _streaming(args, _env(**env))

    line = _one_line(done.stderr)
    assert done.returncode == 2, done.stderr
    assert setting in line


def test_a_missing_replay_file_says_it_is_missing_not_that_its_name_is_unreadable():
    done = _streaming(["replay"], _env(STREAMING_REPLAY_FILES="/nonexistent.csv"))

    line = _one_line(done.stderr)
    assert "no such file" in line and "cannot tell symbol" not in line


def test_a_secret_in_a_refused_setting_is_not_echoed():
    env = _env(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_KEY_LOCATION="/nonexistent/key.pem",
               KAFKA_SSL_KEY_PASSWORD="hunter2-secret")
    done = _streaming(["replay"], env)

    assert done.returncode == 2 and "hunter2-secret" not in done.stderr + done.stdout


@pytest.mark.parametrize("servers", [None, "no-such-host.invalid:9092"])
def test_no_broker_is_one_line_after_the_bounded_wait_and_exit_1(servers):
    env = _env(STREAMING_STARTUP_TIMEOUT="3", **({"KAFKA_BOOTSTRAP_SERVERS": servers} if servers else {}))

    done = _streaming(["replay"], env)

    line = _one_line(done.stderr)
    assert done.returncode == 1
    assert "KAFKA_BOOTSTRAP_SERVERS=" in line and "within 3s" in line and "STREAMING_STARTUP_TIMEOUT" in line


def test_unreachable_exchange_info_is_one_line_after_the_bounded_wait_and_exit_1(kafka_bootstrap, topic):
    rest = f"http://127.0.0.1:{free_port()}"
    env = _env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, KAFKA_TOPIC=topic, KAFKA_DLQ_TOPIC=f"{topic}.dlq",
               STREAMING_STARTUP_TIMEOUT="2", BINANCE_REST_URL=rest, STREAMING_WS_URL="ws://127.0.0.1:9")

    done = _streaming(["live"], env)

    line = _one_line(done.stderr)
    assert done.returncode == 1
    assert f"BINANCE_REST_URL={rest}" in line and "within 2s" in line
