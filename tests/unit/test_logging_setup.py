"""Readable logs (issue 13.6): UTC time and level on every line, files capped and rotated, Airflow quiet."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from klinepipe import logging_setup
from devstack.airflow_env import airflow_quiet_logging

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_a_program_logs_utc_time_and_level(tmp_path):
    code = ("import logging, time; from klinepipe import logging_setup; logging_setup.configure('streaming');"
            "logging.getLogger('streaming.kafka_sink').warning('broker down')")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"TZ": "Asia/Tokyo", "PATH": "/usr/bin"}).stderr

    assert re.fullmatch(rf"{STAMP} WARNING streaming streaming\.kafka_sink broker down\n", err), err


def test_the_timestamp_is_utc_whatever_the_local_zone():
    assert logging_setup.utc_stamp(0.25) == "1970-01-01T00:00:00.250Z"
    assert logging_setup.utc_stamp(1_764_547_200.0) == "2025-12-01T00:00:00.000Z"


def test_a_childs_lines_are_stamped_with_a_level_unless_they_carry_a_time(tmp_path):
    code = ("import sys; print('streaming: replaying x'); print('2026-01-01T00:00:00.000Z INFO trader own line');"
            "print('Traceback (most recent call last):', file=sys.stderr)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for t in logging_setup.pump("streaming", proc, tmp_path, echo=False):
        t.join(30)
    proc.wait()

    lines = sorted((tmp_path / "streaming.log").read_text().splitlines())
    assert len(lines) == 3
    assert lines[0] == "2026-01-01T00:00:00.000Z INFO trader own line"
    assert {re.sub(STAMP, "T", line) for line in lines[1:]} == {
        "T INFO streaming: replaying x", "T ERROR Traceback (most recent call last):"}


def test_log_files_are_capped_and_rotated(tmp_path):
    handler = logging_setup.rotating_file(tmp_path / "airflow.log", max_bytes=1_000, backups=2)
    import logging

    for i in range(500):
        handler.emit(logging.makeLogRecord({"msg": f"line {i:04d} " + "x" * 40}))
    handler.close()

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["airflow.log", "airflow.log.1", "airflow.log.2"]
    assert all((tmp_path / f).stat().st_size <= 1_000 for f in files)
    assert (tmp_path / "airflow.log").read_text().splitlines()[-1].startswith("line 0499 ")  # the newest is kept


def test_airflow_runs_quiet_under_make_run_unless_asked(monkeypatch):
    quiet = airflow_quiet_logging()
    assert "http.access=WARNING" in quiet["AIRFLOW__LOGGING__NAMESPACE_LEVELS"]
    assert "airflow.jobs=WARNING" in quiet["AIRFLOW__LOGGING__NAMESPACE_LEVELS"]
    assert quiet["AIRFLOW__LOGGING__UVICORN_LOGGING_LEVEL"] == "WARNING"
    monkeypatch.setenv("KLINEPIPE_AIRFLOW_LOG_LEVEL", "info")
    assert airflow_quiet_logging() == {}


@pytest.mark.parametrize("env,expected", [
    ({}, (logging_setup.DEFAULT_MAX_BYTES, logging_setup.DEFAULT_BACKUPS)),
    ({"KLINEPIPE_LOG_MAX_BYTES": "2048", "KLINEPIPE_LOG_BACKUPS": "0"}, (2048, 0)),
    ({"KLINEPIPE_LOG_MAX_BYTES": "10MB"}, "invalid setting KLINEPIPE_LOG_MAX_BYTES: '10MB' is not a whole number above 0"),
    ({"KLINEPIPE_LOG_BACKUPS": "-1"}, "invalid setting KLINEPIPE_LOG_BACKUPS: '-1' is not a whole number"),
])
def test_make_run_takes_its_log_limits_from_the_environment_and_names_a_bad_one(env, expected):
    from devstack.supervisor import GiveUp, log_limits

    if isinstance(expected, tuple):
        assert log_limits(env) == expected
    else:
        with pytest.raises(GiveUp) as err:
            log_limits(env)
        assert str(err.value) == expected
