"""``make run``'s supervisor on embedded defaults: candles, features and paper orders appear; Ctrl-C/SIGTERM
stops every process it started (Airflow's workers included); a second start on the same data works."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from klinepipe.embedded import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.stack


class Run:
    """One ``python -m klinepipe.devstack`` process with its output collected."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
        env.update({"KLINEPIPE_DATA_DIR": str(data_dir), "AIRFLOW_PORT": str(free_port()),
                    "STREAMING_REPLAY_SPEED": "600x", "STREAMING_MODE": "replay", **settings})
        self.proc = subprocess.Popen([sys.executable, "-m", "klinepipe.devstack"], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            assert self.proc.poll() is None, "".join(self.lines[-40:])
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} within {timeout}s:\n{''.join(self.lines[-40:])}")

    def family(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def stop(self) -> list[psutil.Process]:
        family = self.family()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=90)
        time.sleep(1)
        return [p for p in family if _alive(p)]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def _count(url: str, sql: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as c:
            return c.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


def test_make_run_shows_candles_features_and_paper_orders_then_stops_cleanly_twice(tmp_path):
    first = Run(tmp_path)
    try:
        first.wait_for(r"replaying .*BTCUSDT-1m", 60)
        url = first.wait_for(r"SQL\s+: psql '([^']+)'", 600).group(1)  # the banner waits for the UI to answer
        first.wait_for(r"Airflow UI : http://127\.0\.0\.1:\d+\s+login: admin / \w+", 5)
        first.wait_for(r"trader: .* (BUY|SELL) ", 240)  # an ingest run, a features run, a paper order
        assert _count(url, "SELECT count(*) FROM market.candles") > 0
        assert _count(url, "SELECT count(*) FROM market.features") > 0
        assert _count(url, "SELECT count(*) FROM trading.orders") > 0
        orders = _count(url, "SELECT count(*) FROM trading.orders")
        workers = [p for p in first.family() if "airflow" in _cmdline(p)]
        assert len(workers) >= 4  # standalone, scheduler, dag-processor, api-server, triggerer ...
        replayed_until = _count(url, "SELECT max(event_time) FROM market.candles WHERE source = 'replay'")
    finally:
        leftovers = first.stop()
    assert leftovers == [], [_cmdline(p) for p in leftovers]

    assert not [p for p in psutil.process_iter() if str(tmp_path) in _cmdline(p)]  # postgres (daemonised) too

    second = Run(tmp_path)  # same data, ports, pid file: starts again, and the replay goes on where it stopped
    try:
        resumed = second.wait_for(r"replaying .*BTCUSDT-1m.* resuming after (\S+) \(STREAMING_REPLAY_AFTER\)", 180).group(1)
        assert datetime.fromisoformat(resumed.replace("Z", "+00:00")) >= replayed_until.replace(microsecond=0)
        second.wait_for(r"klinepipe is running", 600)  # the banner waits for the UI to answer
        assert _count(url, "SELECT count(*) FROM trading.orders") >= orders  # data kept
        deadline = time.monotonic() + 180  # the new broker's messages load, none skipped below the old offsets:
        while _count(url, f"SELECT count(*) FROM market.candles WHERE open_time >= '{resumed}'") < 5:
            assert time.monotonic() < deadline, "".join(second.lines[-40:])
            time.sleep(1)
        assert _count(url, "SELECT count(*) - (extract(epoch FROM max(open_time) - min(open_time)) / 60 + 1)"
                           " FROM market.candles") == 0  # the series has no hole where the second run began
    finally:
        leftovers = second.stop()
    assert leftovers == [], [_cmdline(p) for p in leftovers]
    assert not [p for p in psutil.process_iter() if str(tmp_path) in _cmdline(p)]
