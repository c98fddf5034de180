"""Whole-stack chaos: a real ``make run`` replays 12 hours of real candles at 180x with the paper trader, while the
test kills parts at random (streaming, trader, broker, scheduler, triggerer, a running task) and stops the
embedded PostgreSQL once. Afterwards every part runs again, ``market.candles`` equals the replayed file exactly,
there is one order per intent, and the paper fills equal the backtest's.

The faults' order and timing come from a seeded RNG: ``KLINEPIPE_CHAOS_SEED=<seed>`` replays a failing run (the
seed is printed first). One line per fault: its recovery time, and over the candles replayed from that fault to
the next, how many are missing or differ, and the most orders any intent got."""

from __future__ import annotations

import os
import random
import re
import signal
import time
from decimal import Decimal

import psutil
import pytest
import sqlalchemy as sa

from tests.helpers import sample_rows, write_csv
from tests.stack.runner import Run, alive, cmdline
from tests.traders import backtest_fills, make_trader, model_of
from trader.backtest.candles import read_kline_file
from trader.backtest.runner import run_backtest

pytestmark = pytest.mark.stack

N = 720  # 12 hours of 1m candles: 240 s of replay at 180x (Airflow takes a minute or two of it to start)
FAULTS = ["streaming", "trader", "tansu", "airflow-scheduler", "airflow-triggerer", "task", "postgres"]
SUPERVISED = ["tansu", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "trader"]


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
    pid = run.pid_of(fault)
    assert not (fault == "streaming" and run.lines_since(0, r"supervisor: streaming finished")), \
        "the replay ended before the streaming fault: replay more candles or slower"
    os.kill(pid, signal.SIGKILL)
    return f"pid {pid}"


def _recovered(run: Run, fault: str, before: dict, url: str) -> bool:
    if fault == "task":  # the loader goes on: a candle stored after the kill
        return _stored(url) > before["stored"] or run.lines_since(before["line"], r"streaming finished")
    if fault == "postgres":
        return any("postgres: back after" in line for line in run.lines[before["line"]:]) and _stored(url) >= 0
    pid = run.pid_of(fault)
    return pid != before["pid"] and psutil.pid_exists(pid) and alive(psutil.Process(pid))


def test_chaos(tmp_path):
    seed = int(os.environ.get("KLINEPIPE_CHAOS_SEED") or random.SystemRandom().randrange(2**31))
    print(f"chaos seed {seed} (KLINEPIPE_CHAOS_SEED={seed} replays this run)")
    rng = random.Random(seed)
    faults = FAULTS[:]
    rng.shuffle(faults)
    rows = sample_rows(N)
    csv_path = write_csv(tmp_path / "BTCUSDT-1m.csv", rows)
    data = tmp_path / "data"
    run = Run(data, STREAMING_REPLAY_FILES=str(csv_path), STREAMING_REPLAY_SPEED="180x",
              STREAMING_METRICS_PORT="0", TRADER_METRICS_PORT="0")
    report: list[dict] = []
    try:
        url = run.wait_for(r"SQL\s+: psql '([^']+)'", 300).group(1)
        run.wait_for(r"trader: .*sleeves=", 120)
        deadline = time.monotonic() + 180  # faults while the pipeline works: once the loader stored candles
        while _stored(url) < 1:
            assert time.monotonic() < deadline, "".join(run.lines[-40:])
            time.sleep(0.5)
        for fault in faults:
            time.sleep(rng.uniform(3, 12))
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
    finally:
        leftovers = run.stop()
    assert leftovers == [], [cmdline(p) for p in leftovers]
