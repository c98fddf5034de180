"""``make run`` can be found and read (issue 13.3, 13.5, 13.6): the demo market by default without Binance, the UI
URL only once it answers, the connection file the CLIs and ``make status`` use, UTC-stamped and quiet logs."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT
from tests.stack.runner import Run

pytestmark = pytest.mark.stack
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR|DEBUG|CRITICAL) ")


def _cli(*args: str, data_dir) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "TRADER_DATABASE_URL")}
    env.update({"KLINEPIPE_DATA_DIR": str(data_dir), "TRADER_METRICS_PORT": "0"})
    return subprocess.run([sys.executable, "-m", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_running_stack_says_what_it_streams_answers_where_it_says_and_can_be_found(tmp_path):
    run = Run(tmp_path, STREAMING_MODE="demo")
    try:
        run.wait_for(r"\[streaming\] .*DEMO MARKET BTCUSDT 1m, not live prices", 120)
        ui = run.wait_for(r"Airflow UI : (http://127\.0\.0\.1:\d+)\s+login: admin, password in \S+", 600).group(1)
        with urllib.request.urlopen(f"{ui}/api/v2/monitor/health", timeout=10) as resp:  # printed only once it answers
            assert resp.status == 200
        run.wait_for(r"export DATABASE_URL=", 5)
        env_file = tmp_path / "stack.env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

        trader = _cli("trader", "status", data_dir=tmp_path)
        assert trader.returncode == 0 and f"using the running stack's DATABASE_URL from {env_file}" in trader.stderr, trader

        deadline = time.monotonic() + 240  # the demo's first 500 candles load with the next ingest run
        while "BTCUSDT 1m" not in (status := _cli("devstack", "status", data_dir=tmp_path)).stdout:
            assert time.monotonic() < deadline, status.stdout + status.stderr
            time.sleep(5)
        out = status.stdout
        for part in ("make run", "tansu", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                     "streaming", "trader"):
            assert re.search(rf"^  {part}\s+running\s+pid \d+, since \S+Z, restarts 0", out, re.M), out
        assert re.search(r"^  postgres\s+answering", out, re.M) and re.search(r"^  consumer lag\s+\d+ messages", out, re.M)
        newest = re.search(r"newest candle\s+BTCUSDT 1m\s+opened (\S+) \(([\d.]+) (s|min) ago\)", out)
        assert newest, out  # shifted to the present: minutes old at most, not years

        streaming_log = (tmp_path / "logs" / "streaming.log").read_text().splitlines()
        assert streaming_log and all(STAMP.match(line) for line in streaming_log), streaming_log[:5]
        airflow_log = (tmp_path / "logs" / "airflow-api-server.log").read_text()
        assert "/api/v2/monitor/health" not in airflow_log  # no line per HTTP request
    finally:
        leftovers = run.stop()
    assert leftovers == []
    assert not (tmp_path / "stack.env").exists()  # removed when the stack stops
