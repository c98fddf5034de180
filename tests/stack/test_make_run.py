"""``make run``'s supervisor on embedded defaults: candles, features and paper orders appear; Ctrl-C/SIGTERM
stops every process it started (Airflow's workers included); a second start on the same data works."""

from __future__ import annotations

import time
from datetime import datetime

import psutil
import pytest

from tests.stack.runner import Run, cmdline as _cmdline, count as _count

pytestmark = pytest.mark.stack


def test_make_run_shows_candles_features_and_paper_orders_then_stops_cleanly_twice(tmp_path):
    first = Run(tmp_path)
    try:
        first.wait_for(r"replaying .*BTCUSDT-1m", 60)
        url = first.wait_for(r"SQL\s+: psql '([^']+)'", 180).group(1)
        first.wait_for(r"Airflow UI : http://127\.0\.0\.1:\d+\s+login: admin, password in \S+json\.generated", 5)
        first.wait_for(r"trader: .* (BUY|SELL) ", 240)  # an ingest run, a features run, a paper order
        assert _count(url, "SELECT count(*) FROM market.candles") > 0
        assert _count(url, "SELECT count(*) FROM market.features") > 0
        assert _count(url, "SELECT count(*) FROM trading.orders") > 0
        orders = _count(url, "SELECT count(*) FROM trading.orders")
        workers = [p for p in first.family() if "airflow" in _cmdline(p)]
        assert len(workers) >= 4  # scheduler, dag-processor, api-server, triggerer ...
        replayed_until = _count(url, "SELECT max(event_time) FROM market.candles WHERE source = 'replay'")
    finally:
        leftovers = first.stop()
    assert leftovers == [], [_cmdline(p) for p in leftovers]

    assert not [p for p in psutil.process_iter() if str(tmp_path) in _cmdline(p)]  # postgres (daemonised) too

    second = Run(tmp_path)  # same data, ports, pid file: starts again, and the replay goes on where it stopped
    try:
        resumed = second.wait_for(r"replaying .*BTCUSDT-1m.* resuming after (\S+) \(STREAMING_REPLAY_AFTER\)", 180).group(1)
        assert datetime.fromisoformat(resumed.replace("Z", "+00:00")) >= replayed_until.replace(microsecond=0)
        second.wait_for(r"klinepipe is running", 180)
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
