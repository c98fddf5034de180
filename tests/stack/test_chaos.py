"""Whole-stack chaos: a real ``make run`` (embedded PostgreSQL, tansu, Airflow's four components, streaming, the
paper trader) replays 14 hours of real candles at 180x, while the test kill -9s every kind of part in a random order
(streaming, trader, the broker while it holds candles the loader has not read, each of Airflow's four components, a
running task) and stops the embedded PostgreSQL once. Each part comes back; afterwards ``market.candles`` equals the
replayed file exactly, there is one order per intent, and the paper fills equal the backtest's. Around that: a
second stack on the same data is refused naming the first, secrets and logs are private and no log holds the
password, and kill -9 of the supervisor itself leaves nothing running, PostgreSQL included (its watchdog).

The faults' order and timing come from a seeded RNG: ``KLINEPIPE_CHAOS_SEED=<seed>`` replays a failing run (the
seed is printed first). One line per fault: its recovery time, and over the candles replayed from that fault to
the next, how many are missing or differ, and the most orders any intent got."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from devstack.embedded import free_port
from tests.conftest import ROOT
from tests.helpers import sample_rows, write_csv
from tests.stack.runner import Run, alive, cmdline
from tests.traders import backtest_fills, make_trader, model_of
from trader.backtest.candles import read_kline_file
from trader.backtest.runner import run_backtest

pytestmark = pytest.mark.stack

N = 840  # 14 hours of 1m candles: 280 s of replay at 180x (Airflow takes a minute or two of it to start)
SUPERVISED = ["tansu", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "trader"]
FAULTS = ["streaming", *SUPERVISED, "task", "postgres"]


def _engine(url: str):
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"), pool_pre_ping=True)


def _query(url: str, sql: str, default=None):
    """A query that may meet PostgreSQL down (the drill stops it): ``default`` then."""
    engine = _engine(url)
    try:
        with engine.connect() as c:
            return c.execute(sa.text(sql)).fetchall()
    except sa.exc.OperationalError:
        return default
    finally:
        engine.dispose()


def _stored(url: str) -> int:
    rows = _query(url, "SELECT count(*) FROM market.candles")
    return -1 if rows is None else rows[0][0]


def _running_task(run: Run) -> psutil.Process | None:
    """A task process of a DAG run (a child of a LocalExecutor worker), if one runs now."""
    try:
        scheduler = psutil.Process(run.pid_of("airflow-scheduler"))
        for p in scheduler.children(recursive=True):
            # a LocalExecutor worker busy with a task instance forks the task's process, titled the same, in a
            # process group of its own
            if re.match(r"airflow worker -- LocalExecutor: [0-9a-f-]{36}", cmdline(p)) and os.getpgid(p.pid) == p.pid:
                return p
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    return None


def _acked(run: Run) -> int | None:
    """The broker's acknowledged count in the sidecar's newest progress (or final) line; it only grows, so the true
    count is at least this (None: no line yet)."""
    acked = [int(m.group(1)) for text in list(run.lines) if (m := re.search(r"streaming: .*published=\d+ acked=(\d+)", text))]
    return acked[-1] if acked else None


def _kill_tansu_holding_unread(run: Run, url: str) -> str:
    """kill -9 of tansu while it holds candles it acknowledged and the loader has not stored (they go with it): the
    scheduler is paused (SIGSTOP) until a progress line says the broker acknowledged more than is stored, so the
    loader cannot catch up meanwhile, whatever the machine's speed; it goes on (SIGCONT) once tansu is dead."""
    scheduler = run.pid_of("airflow-scheduler")
    os.killpg(scheduler, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 120
        while (acked := _acked(run)) is None or (unread := acked - _stored(url)) <= 0:
            assert time.monotonic() < deadline, "the broker never held unread candles:\n" + "".join(run.lines[-40:])
            time.sleep(0.2)
        pid = run.pid_of("tansu")
        os.kill(pid, signal.SIGKILL)
    finally:
        os.killpg(scheduler, signal.SIGCONT)
    return f"pid {pid}, holding {unread} acknowledged candles not stored"


def _inject(run: Run, fault: str, url: str, data) -> str:
    """Do ``fault``; return what was hit."""
    if fault == "task":
        deadline = time.monotonic() + 60
        while (task := _running_task(run)) is None:
            assert time.monotonic() < deadline, "no task ran within 60 s"
            time.sleep(0.05)
        what = cmdline(task)
        task.kill()
        return what.strip()[:80]
    if fault == "postgres":
        pid = int((data / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGINT)  # a fast shutdown, as `pg_ctl stop -m fast`
        return f"postmaster {pid}"
    if fault == "tansu":
        return _kill_tansu_holding_unread(run, url)
    pid = run.pid_of(fault)
    assert not (fault == "streaming" and run.lines_since(0, r"supervisor: streaming finished")), \
        "the replay ended before the streaming fault: replay more candles or slower"
    os.kill(pid, signal.SIGKILL)
    return f"pid {pid}"


def _streaming_replaced(run: Run, start: int) -> bool:
    """The sidecar restarted for a new broker is up again. The supervisor prints "restarting streaming" before it
    stops the old one (up to 5 s) and starts the new one: judged on that line alone, the next fault could aim at the
    old pid and then see a new one that no death explains."""
    lines = run.lines[start:]
    marks = [i for i, line in enumerate(lines) if "supervisor: restarting streaming: the broker it publishes to" in line]
    if not marks or not any(re.search(r"^supervisor: streaming started \(pid", line) for line in lines[marks[0]:]):
        return False
    pid = run.pid_of("streaming")
    return psutil.pid_exists(pid) and alive(psutil.Process(pid))


def _recovered(run: Run, fault: str, before: dict, url: str) -> bool:
    if fault == "task":  # the loader goes on: a candle stored after the kill
        return _stored(url) > before["stored"] or run.lines_since(before["line"], r"streaming finished")
    if fault == "postgres":
        return any("postgres: back after" in line for line in run.lines[before["line"]:]) and _stored(url) >= 0
    pid = run.pid_of(fault)
    if not (pid != before["pid"] and psutil.pid_exists(pid) and alive(psutil.Process(pid))):
        return False
    assert run.lines_since(before["line"], rf"supervisor: {fault} \(pid {before['pid']}\) was killed by signal 9 after"), \
        f"{fault}: a new pid {pid} without the death of {before['pid']}:\n{''.join(run.lines[before['line'] - 10:])}"
    if fault == "tansu":  # the new broker is empty: the sidecar publishing to the old one is restarted too
        return run.lines_since(before["line"], r"kafka: the embedded broker was restarted empty") and _streaming_replaced(
            run, before["line"])
    return True


def test_chaos(tmp_path):
    seed = int(os.environ.get("KLINEPIPE_CHAOS_SEED") or random.SystemRandom().randrange(2**31))
    print(f"chaos seed {seed} (KLINEPIPE_CHAOS_SEED={seed} replays this run)")
    rng = random.Random(seed)
    faults = FAULTS[:]
    rng.shuffle(faults)
    faults.insert(rng.randrange(4), faults.pop(faults.index("tansu")))  # early: while the replay still publishes
    rows = sample_rows(N)
    csv_path = write_csv(tmp_path / "BTCUSDT-1m.csv", rows)
    data = tmp_path / "data"
    streaming_port, trader_port = free_port(), free_port()
    run = Run(data, STREAMING_REPLAY_FILES=str(csv_path), STREAMING_REPLAY_SPEED="180x",
              STREAMING_METRICS_PORT=str(streaming_port), TRADER_METRICS_PORT=str(trader_port))
    report: list[dict] = []
    try:
        url = run.wait_for(r"SQL\s+: psql '([^']+)'", 300).group(1)
        run.wait_for(rf"Metrics .* http://127\.0\.0\.1:{streaming_port}/metrics \(streaming\),"
                     rf" http://127\.0\.0\.1:{trader_port}/metrics \(trader\)", 5)  # the banner states the real ports
        password = _private_secrets(data)
        twin = subprocess.run([sys.executable, "-m", "devstack"], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "KLINEPIPE_DATA_DIR": str(data)}, timeout=120)
        assert twin.returncode == 1 and f"klinepipe is already running on {data} (pid {run.proc.pid})" in twin.stderr
        run.wait_for(r"trader: .*sleeves=", 120)
        deadline = time.monotonic() + 180  # faults while the pipeline works: once the loader stored candles
        while _stored(url) < 1:
            assert time.monotonic() < deadline, "".join(run.lines[-40:])
            time.sleep(0.5)
        for fault in faults:
            time.sleep(rng.uniform(2, 8))
            before = {"stored": _stored(url), "line": len(run.lines),
                      "pid": None if fault in ("task", "postgres") else run.pid_of(fault),
                      "newest": _query(url, "SELECT max(open_time) FROM market.candles", [[None]])[0][0]}
            t0 = time.monotonic()
            hit = _inject(run, fault, url, data)
            deadline = t0 + 180
            while not _recovered(run, fault, before, url):
                assert time.monotonic() < deadline, f"{fault} not recovered:\n{''.join(run.lines[-40:])}"
                time.sleep(0.1)
            report.append({"fault": fault, "hit": hit, "recovery": time.monotonic() - t0, "from": before["newest"]})
            print(f"{fault}: {hit} recovered in {report[-1]['recovery']:.1f} s", flush=True)

        # the replay ends, every candle arrives, the trader decides on the last one
        deadline = time.monotonic() + 300
        while _stored(url) != N or _query(url, "SELECT count(*) FROM market.features", [[0]])[0][0] < N:
            assert time.monotonic() < deadline, (_stored(url), "".join(run.lines[-40:]))
            time.sleep(2)
        last = int(rows[-1][0])
        deadline = time.monotonic() + 120
        while not _query(url, f"SELECT 1 FROM trading.sleeves WHERE last_open_time >= to_timestamp({last / 1000})"):
            assert time.monotonic() < deadline, "the trader never decided on the last candle:\n" + "".join(run.lines[-40:])
            time.sleep(1)

        # every part runs again
        for name in SUPERVISED:
            assert alive(psutil.Process(run.pid_of(name))), name
        streaming = run.pid_of("streaming")  # running, or done: its replay ended after the last restart
        assert psutil.pid_exists(streaming) and alive(psutil.Process(streaming)) or run.lines_since(
            max(i for i, line in enumerate(run.lines) if f"streaming started (pid {streaming}" in line),
            r"supervisor: streaming finished \(code 0\)")
        stored = {r[0]: r[1:] for r in _query(url, "SELECT (extract(epoch FROM open_time) * 1000)::bigint, open, high, low,"
                                                   " close, volume, (extract(epoch FROM close_time) * 1000)::bigint"
                                                   " FROM market.candles")}
        source = {int(r[0]): (Decimal(r[1]), Decimal(r[2]), Decimal(r[3]), Decimal(r[4]), Decimal(r[5]), int(r[6]))
                  for r in rows}
        orders = _query(url, "SELECT (extract(epoch FROM signal_open_time) * 1000)::bigint, sleeve, side, count(*)"
                             " FROM trading.orders GROUP BY 1, 2, 3")
        for k, item in enumerate(report):
            # its window: from the newest candle stored when it struck to the newest stored when the next one did
            ms = [r["from"].timestamp() * 1000 if r["from"] else 0 for r in report] + [last + 1]
            start, end = ms[k], ms[k + 1]
            window = [t for t in source if start < t <= end]
            missing = sum(t not in stored for t in window)
            changed = sum(t in stored and tuple(stored[t]) != source[t] for t in window)
            per_intent = max([o[3] for o in orders if start < o[0] <= end] or [0])
            print(f"fault {item['fault']:<18} recovered in {item['recovery']:5.1f} s; candles until the next fault:"
                  f" {len(window):3d}, missing {missing}, changed {changed}, duplicated 0 (primary key);"
                  f" most orders for one intent {per_intent}  ({item['hit']})")

        assert stored.keys() == source.keys()
        assert {t: tuple(v) for t, v in stored.items()} == source
        assert max(o[3] for o in orders) == 1, "one order per intent"

        trader = make_trader(url)
        candles = read_kline_file(csv_path)
        result = run_backtest(candles, trader.sleeves[0].strategy, model_of(trader, 10000.0))
        expected = backtest_fills(candles, result.fills)
        filled = _query(url, "SELECT (extract(epoch FROM o.signal_open_time) * 1000)::bigint, o.side, f.price,"
                             " (extract(epoch FROM f.filled_at) * 1000)::bigint, f.quantity FROM trading.orders o"
                             " JOIN trading.fills f USING (client_order_id) WHERE o.mode = 'paper'"
                             " ORDER BY o.signal_open_time")
        print(f"paper fills {len(filled)}, backtest fills {len(expected)}")
        assert len(expected) >= 4
        assert [(f[0], f[1], float(f[2]), f[3]) for f in filled] == [e[:4] for e in expected]
        assert [float(f[4]) for f in filled] == pytest.approx([e[4] for e in expected], rel=1e-12)
        _private_logs(data, password, run)
    except BaseException:
        run.stop()
        raise
    _kill_the_supervisor(run, data)


def _private_secrets(data: Path) -> str:
    """Secrets on disk are private (0600, logs directory 0700); returns the admin password."""
    secret = data / "airflow" / "simple_auth_manager_passwords.json.generated"
    for path in (secret, data / "airflow" / "klinepipe-secrets.json", data / "run.lock"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((data / "logs").stat().st_mode) == 0o700
    return json.loads(secret.read_text())["admin"]


def _private_logs(data: Path, password: str, run: Run) -> None:
    """Every log is private and none holds the password, Airflow's task logs included."""
    for log in (data / "logs").iterdir():
        assert stat.S_IMODE(log.stat().st_mode) == 0o600, log
        assert password not in log.read_text(errors="replace"), log
    assert password not in "".join(run.lines)
    task_logs = [f for f in (data / "airflow" / "logs").rglob("*") if f.is_file()]
    assert task_logs and [f for f in task_logs if f.stat().st_mode & 0o077] == []


def _kill_the_supervisor(run: Run, data: Path) -> None:
    """kill -9 of the supervisor: its watchdog stops every child, their children and PostgreSQL."""
    family = [p for p in run.family() if p.pid != run.proc.pid]
    postgres = [p for p in psutil.process_iter() if str(data / "pg") in cmdline(p)]
    assert postgres and len([p for p in family if "airflow" in cmdline(p)]) >= 4
    run.proc.kill()
    run.proc.wait()
    deadline = time.monotonic() + 60
    while left := [p for p in family + postgres if alive(p)]:
        assert time.monotonic() < deadline, [cmdline(p) for p in left]
        time.sleep(0.5)
    assert not [p for p in psutil.process_iter() if str(data) in cmdline(p)]
    assert "the supervisor died" in (data / "logs" / "watchdog.log").read_text()
