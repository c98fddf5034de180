"""Outage drills (issue 12 point 3, trader part): ``python -m trader run`` (testnet, fake Binance) rides out
PostgreSQL being killed (SIGKILL of the real postmaster, started again on the same data directory and port)
and Binance REST being stopped and started: the process stays alive, says so once per outage and once on
recovery, shows it in ``trader_dependency_up`` / ``trader_outages_total``, decides the candles that arrived
meanwhile, and never doubles an order.

The PostgreSQL here is a private one (pgserver's binaries, our own data directory on a TCP port), so killing
it cannot disturb the session's database. ``KLINEPIPE_DRILL_OUTAGE_S`` sets how long each outage lasts, as for
every drill (``tests/outage_drills.py``; the issue's drill is 60 s).
"""

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from decimal import Decimal as D
from pathlib import Path

import pytest
import sqlalchemy as sa

from klinepipe.db import apply_migrations, ensure_database, make_engine
from tests.conftest import ROOT
from tests.fake_binance import FakeBinance, free_port
from tests.helpers import expected_sma_cross_orders, sample_rows, seed_features
from tests.outage_drills import OUTAGE_S

pytestmark = pytest.mark.integration
ROWS = sample_rows(700)
EXPECTED = expected_sma_cross_orders([D(r[4]) for r in ROWS])


class PrivatePostgres:
    """An embedded PostgreSQL of our own (pgserver, its own data directory and socket) that a drill may kill
    and start again on the same data directory and socket, as the session's embedded one is started."""

    def __init__(self, root: Path) -> None:
        from devstack.embedded import start_postgres

        self.server = start_postgres(root / "pg")
        info = self.server.get_postmaster_info()
        self.socket_dir = info.socket_dir

    def _pid(self) -> int:
        return int((self.server.pgdata / "postmaster.pid").read_text().splitlines()[0])

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends (by id): an unclean stop, crash recovery on the next start."""
        pid = self._pid()
        ps = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True).stdout
        pids = [pid, *(int(p) for p in ps.split())]
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.server.log), "start")

    def stop(self) -> None:
        if (self.server.pgdata / "postmaster.pid").exists() and _alive(self._pid()):  # not when a failed drill left it killed
            self._pg_ctl("-m", "fast", "-w", "stop")

    def url(self, db: str) -> str:
        return self.server.get_uri(db)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def private_pg(tmp_path):
    pg = PrivatePostgres(tmp_path)
    name = f"kp_drill_{uuid.uuid4().hex[:6]}"
    ensure_database(pg.url("postgres"), name)
    engine = make_engine(pg.url(name))
    apply_migrations(engine)
    yield pg, pg.url(name), engine
    engine.dispose()
    pg.stop()
    atexit.unregister(pg.server._cleanup)  # stopped here; pgserver's handle knows only the first postmaster


@pytest.fixture
def fake(fake_binance):
    return fake_binance(price=ROWS[-1][4], usdt="100000")


class Trader:
    """``python -m trader run`` with its output collected line by line."""

    def __init__(self, url: str, fake: FakeBinance) -> None:
        self.metrics_port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "TRADER_MODE": "testnet", "TRADER_BINANCE_REST_URL": fake.url,
               "BINANCE_API_KEY": fake.api_key, "BINANCE_API_SECRET": fake.api_secret,
               "TRADER_SLEEVES": "BTCUSDT:1m:sma_cross:1000", "TRADER_STALE_INTERVALS": "0", "TRADER_POLL_INTERVAL": "0.2",
               "TRADER_RETRY_MAX_DELAY": "2", "TRADER_METRICS_PORT": str(self.metrics_port), "TRADER_MAX_ORDERS_PER_MINUTE": "0",
               "TRADER_MAX_DAILY_LOSS": "0", "TRADER_MAX_DRAWDOWN": "0"}
        self.proc = subprocess.Popen([sys.executable, "-m", "trader", "run", "--accept-differences"], cwd=ROOT, env=env,
                                     text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def metric(self, name: str) -> float | None:
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        for line in body.splitlines():
            if line.split(" ")[0] == name:
                return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        time.sleep(0.2)
        return "\n".join(self.lines)


def wait_until(condition, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - e.g. the database is still recovering
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout:.0f} s: {what}")
        time.sleep(0.2)


def ledger_orders(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT client_order_id, side, status FROM trading.orders WHERE mode = 'testnet'"
                                 " ORDER BY signal_open_time")).fetchall()


def expected_until(n_rows: int) -> list[str]:
    return [side for i, side in EXPECTED if i < n_rows]


def decided_through(engine, n: int, what: str) -> None:
    """Wait until the ledger holds exactly the orders the first ``n`` candles call for, all filled."""
    wait_until(lambda: [o.side for o in ledger_orders(engine)] == expected_until(n)
               and all(o.status == "FILLED" for o in ledger_orders(engine)), what)


def one_order_per_intent(engine, fake) -> None:
    on_exchange = Counter(o["clientOrderId"] for o in fake.orders())
    assert all(n == 1 for n in on_exchange.values()), on_exchange
    assert set(on_exchange) == {o.client_order_id for o in ledger_orders(engine)}


def test_postgres_killed_then_restarted_the_trader_rides_it_out(private_pg, fake):
    pg, url, engine = private_pg
    first, second = 250, 700
    seed_features(engine, ROWS[:first])
    trader = Trader(url, fake)
    try:
        decided_through(engine, first, "the history before the outage decided")
        assert trader.metric('trader_dependency_up{dependency="postgres"}') == 1.0

        engine.dispose()
        pg.kill()
        wait_until(lambda: any("postgres down" in ln for ln in trader.lines), "the outage reported", 60)
        time.sleep(OUTAGE_S)
        assert trader.alive(), "\n".join(trader.lines)
        assert trader.metric('trader_dependency_up{dependency="postgres"}') == 0.0
        pg.start()
        wait_until(lambda: any("postgres back" in ln for ln in trader.lines), "the recovery reported", 60)

        seed_features(engine, ROWS[:second])  # candles that arrive after the outage are decided
        decided_through(engine, second, "the candles after the outage decided")
        assert trader.metric('trader_outages_total{dependency="postgres"}') == 1.0
    finally:
        out = trader.stop()
        print(out)  # shown with -s: the drill's own account
    assert trader.proc.returncode == 0, out
    assert "Traceback" not in out
    assert sum("postgres down" in ln for ln in out.splitlines()) == 1, out
    assert sum("postgres back" in ln for ln in out.splitlines()) == 1, out
    one_order_per_intent(engine, fake)


def test_binance_stopped_then_started_the_trader_rides_it_out(private_pg, fake):
    pg, url, engine = private_pg
    first, second = 250, 700
    seed_features(engine, ROWS[:first])
    trader = Trader(url, fake)
    try:
        decided_through(engine, first, "the history before the outage decided")

        fake.stop()
        seed_features(engine, ROWS[:second])  # candles keep coming while Binance is away: orders cannot go out
        wait_until(lambda: any("binance down" in ln for ln in trader.lines), "the outage reported", 60)
        time.sleep(OUTAGE_S)
        assert trader.alive(), "\n".join(trader.lines)
        assert trader.metric('trader_dependency_up{dependency="binance"}') == 0.0
        fake.start()

        decided_through(engine, second, "the candles after the outage decided")
        assert trader.metric('trader_outages_total{dependency="binance"}') >= 1.0
    finally:
        out = trader.stop()
        print(out)  # shown with -s: the drill's own account
    assert trader.proc.returncode == 0, out
    assert "Traceback" not in out
    downs = sum("binance down" in ln for ln in out.splitlines())
    assert downs >= 1 and downs == sum("binance back" in ln for ln in out.splitlines()), out
    one_order_per_intent(engine, fake)
