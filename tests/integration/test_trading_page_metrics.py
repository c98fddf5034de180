"""The trader's ``/metrics`` in a real ``python -m trader run`` (paper, real PostgreSQL): the ledger's decisions,
orders, fills, equity and kill switch, and the loop's steps, as Prometheus text; ``TRADER_METRICS_PORT=0``
turns it off. (The ETL's endpoint is checked through Airflow in ``tests/ui/test_trading_page.py``.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from devstack.embedded import free_port
from tests.conftest import ROOT
from tests.helpers import expected_sma_cross_orders, sample_rows, seed_features

pytestmark = pytest.mark.integration
SLEEVE = "BTCUSDT:1m:sma_cross"
ROWS = sample_rows(300)


def _trader(database_url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "TRADER_MODE": "paper", "TRADER_SLEEVES": SLEEVE,
           "TRADER_STALE_INTERVALS": "0", "TRADER_POLL_INTERVAL": "0.2", "TRADER_MAX_ORDERS_PER_MINUTE": "0",
           "TRADER_METRICS_PORT": str(port)}
    return subprocess.Popen([sys.executable, "-m", "trader", "run"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _decided(engine) -> int:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM trading.signals")).scalar()


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


def test_trader_run_serves_ledger_and_loop_metrics(db, database_url):
    seed_features(db, ROWS)
    expected_orders = len(expected_sma_cross_orders([Decimal(r[4]) for r in ROWS]))
    port = free_port()
    proc = _trader(database_url, port)
    try:
        deadline = time.monotonic() + 60
        while _decided(db) < len(ROWS):  # every candle decided: the ledger stops changing
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "slow"
            time.sleep(0.2)
        samples = _scrape(port)
    finally:
        out = _stop(proc)

    decisions = sum(v for (name, labels), v in samples.items()
                    if name == "trader_decisions_total" and dict(labels)["sleeve"] == SLEEVE)
    orders = sum(v for (name, _), v in samples.items() if name == "trader_orders")
    assert f"metrics on http://127.0.0.1:{port}/metrics" in out  # private by default
    assert decisions == len(ROWS)
    assert orders == expected_orders > 0
    assert samples[("trader_kill_switch_state", (("mode", "paper"), ("state", "ACTIVE")))] == 1
    assert samples[("trader_equity", (("mode", "paper"),))] > 0
    assert samples[("trader_loop_steps_total", ())] >= 1
    assert samples[("trader_metrics_up", ())] == 1


def test_metrics_port_zero_turns_the_endpoint_off(db, database_url):
    seed_features(db, ROWS[:40])
    proc = _trader(database_url, 0)
    try:
        deadline = time.monotonic() + 60
        while _decided(db) == 0:  # the loop runs, so the metrics step is behind us
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        out = _stop(proc)

    assert "trader: mode=PAPER" in out and "metrics" not in out
