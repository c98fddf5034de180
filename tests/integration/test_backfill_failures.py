"""A REST backfill that cannot work fails quickly, saying why; a reachable Binance that errors is retried.

Real python-binance clients against a name that never resolves, a closed port and the local fake Binance;
``sleep`` is recorded instead of slept, so the waits are asserted as values, not timed."""

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from klinepipe.backfill import BinanceUnreachable, load_history
from devstack.embedded import free_port
from klinepipe.errors import KlinepipeFatalError, KlinepipeRetryableError
from tests.conftest import ROOT
from tests.fake_binance import Fault
from tests.helpers import binance_client, sample_rows

pytestmark = pytest.mark.integration
START, END = datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, tzinfo=timezone.utc)
TIMEOUT = {"timeout": (5, 30)}


@pytest.mark.parametrize(("base", "cause"), [("http://api.binance.invalid", "name resolution failed"),
                                             (f"http://127.0.0.1:{free_port()}", "connection refused")],
                         ids=["unresolvable-host", "closed-port"])  # the same ids on every xdist worker
def test_an_unreachable_binance_fails_after_three_quick_tries_naming_url_and_cause(engine, base, cause):
    slept = []

    with pytest.raises(BinanceUnreachable) as err:
        load_history(engine, binance_client(base, requests_params=TIMEOUT), ["BTCUSDT"], "1m", START, END, sleep=slept.append)

    assert str(err.value).startswith(f"cannot reach {base}: {cause} (3 attempts in ")
    assert isinstance(err.value, KlinepipeFatalError)  # the DAG fails it at once: no Airflow retries a minute apart
    assert slept == [1.0, 2.0]


def test_an_unknown_symbol_fails_at_the_first_answer(engine, fake_binance):
    fake = fake_binance()
    slept = []

    with pytest.raises(KlinepipeFatalError, match=r"klines NOSUCHPAIR 1m: HTTP 400 -1121 Invalid symbol\."):
        load_history(engine, binance_client(fake, requests_params=TIMEOUT), ["NOSUCHPAIR"], "1m", START, END, sleep=slept.append)

    assert len(fake.requests("/api/v3/klines")) == 1 and slept == []


def test_a_5xx_from_a_reachable_binance_is_retried_and_the_load_completes(engine, fake_binance):
    rows = sample_rows(1500)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    fake = fake_binance(klines=rows)
    fake.inject(Fault("GET", "/api/v3/klines", 503, -1001, "Internal error; unable to process your request.", times=2))
    slept = []

    loaded = load_history(engine, binance_client(fake, requests_params=TIMEOUT), ["BTCUSDT"], "1m",
                          epoch + timedelta(milliseconds=int(rows[0][0])),
                          epoch + timedelta(milliseconds=int(rows[-1][0]) + 60_000), sleep=slept.append)

    assert loaded == {"BTCUSDT": 1500}
    assert slept[:2] == [1.0, 2.0]


def test_a_reachable_binance_that_keeps_failing_is_left_to_airflow_retries_with_the_cause(engine, fake_binance):
    fake = fake_binance()
    fake.inject(Fault("GET", "/api/v3/klines", 503, -1001, "Internal error", times=100))
    slept = []

    with pytest.raises(KlinepipeRetryableError, match=rf"klines BTCUSDT 1m from {fake.url}: HTTP 503 Internal error \(6 attempts in "):
        load_history(engine, binance_client(fake, requests_params=TIMEOUT), ["BTCUSDT"], "1m", START, END, sleep=slept.append)

    assert slept == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_the_backfill_script_says_why_and_exits_1_without_a_traceback(database_url):
    base = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "DATABASE_URL": database_url, "BINANCE_REST_URL": base}

    done = subprocess.run([sys.executable, "scripts/backfill.py", "--no-progress", "history", "--symbols", "BTCUSDT",
                           "--interval", "1m", "--start", "2024-01-01", "--end", "2024-01-02"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 1
    assert f"backfill: cannot reach {base}: connection refused (3 attempts in " in done.stderr
    assert "Traceback" not in done.stderr
