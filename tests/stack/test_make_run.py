"""``make run``'s supervisor on embedded defaults: candles, features and paper orders appear; Ctrl-C/SIGTERM
stops every process it started (Airflow's workers included); a second start on the same data works."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime

import psutil
import pytest

from tests.conftest import ROOT
from tests.stack.runner import Run, cmdline as _cmdline, count as _count

USER = "BTCUSDT:1m:my_trend"  # the second start also trades a strategy of the user's, from the template

pytestmark = pytest.mark.stack


def test_make_run_shows_candles_features_and_paper_orders_then_stops_cleanly_twice(tmp_path):
    first = Run(tmp_path)
    try:
        first.wait_for(r"replaying .*BTCUSDT-1m", 60)
        url = first.wait_for(r"SQL\s+: psql '([^']+)'", 600).group(1)
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

    strategies = tmp_path / "strategies"  # the README's "Write your own strategy", in the stack: new-strategy, then run
    created = subprocess.run([sys.executable, "-m", "trader", "new-strategy", "my_trend"], cwd=ROOT, capture_output=True,
                             text=True, env={**os.environ, "TRADER_STRATEGY_DIR": str(strategies)})
    assert created.returncode == 0, created.stderr
    second = Run(tmp_path, TRADER_STRATEGY_DIR=str(strategies), TRADER_SLEEVES=f"BTCUSDT:1m:sma_cross:1000,{USER}:1000",
                 TRADER_STRATEGY_PARAMS='{"sma_cross": {"fast": 10, "slow": 30}, "my_trend": {"fast": 3, "slow": 7}}')
    # same data, ports, pid file: starts again, and the replay goes on where it stopped
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
        # the user's sleeve: its specs (sma(3), sma(7), not in the default set) registered by the trader, computed by
        # the features task for the whole history, and its decisions made on them, paper orders included
        deadline = time.monotonic() + 300
        while _count(url, f"SELECT count(*) FROM trading.orders WHERE sleeve = '{USER}' AND mode = 'paper'") < 1:
            assert time.monotonic() < deadline, "".join(second.lines[-40:])
            time.sleep(2)
        assert _count(url, "SELECT count(*) FROM market.features WHERE sma_3 IS NOT NULL AND sma_7 IS NOT NULL") > 100
        assert _count(url, f"SELECT count(*) FROM trading.signals WHERE sleeve = '{USER}'") > 0
    finally:
        leftovers = second.stop()
    assert leftovers == [], [_cmdline(p) for p in leftovers]
    assert not [p for p in psutil.process_iter() if str(tmp_path) in _cmdline(p)]
