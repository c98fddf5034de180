"""A real ``make run`` as a supervisor, when a part cannot run: it stops everything and says which part, once.
(kill -9 of every part and of the supervisor itself, the twin stack, private secrets and logs: ``test_chaos.py``.)"""

from __future__ import annotations

import time

import psutil
import pytest

from tests.stack.runner import Run, alive, cmdline

pytestmark = pytest.mark.stack


def test_a_part_that_cannot_run_stops_make_run_with_exit_1_naming_its_log(tmp_path):
    """The trader refuses its settings (exit 2: not retried) or, before that check existed, crash-loops (five
    quick deaths): either way ``make run`` stops everything and exits 1 with one line naming the trader's log."""
    data = tmp_path / "data"
    run = Run(data, TRADER_STRATEGY_PARAMS="{not json", STREAMING_METRICS_PORT="0", TRADER_METRICS_PORT="0")
    family: list[psutil.Process] = []
    deadline = time.monotonic() + 600
    while run.proc.poll() is None:
        assert time.monotonic() < deadline, "".join(run.lines[-40:])
        try:
            family += [p for p in run.family() if p not in family]
        except psutil.NoSuchProcess:
            pass
        time.sleep(1)
    run.proc.wait()
    out = "".join(run.lines)
    assert run.proc.returncode == 1, out[-3000:]
    verdict = [line for line in run.lines if line.startswith("klinepipe: trader ")]
    assert verdict and str(data / "logs" / "trader.log") in verdict[-1] and verdict[-1].endswith("Stopping.\n"), out[-3000:]
    time.sleep(1)
    assert [cmdline(p) for p in family if alive(p)] == []
    assert not [p for p in psutil.process_iter() if str(data) in cmdline(p)]
