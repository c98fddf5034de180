"""The four flows of docs/flows.md, walked for real: each documented step runs, in the documented order.

Each test drives one flow on the real parts (the fake Binance's websocket, the Kafka-API broker, PostgreSQL)
with a profiler on, which records the first call of every function of the project's production code. The
map a newcomer reads (``docs/flows.md``: at most six files per flow, entry to write) is parsed from the
page, so the two cannot drift: a step that was renamed, moved or taken off the path fails here.
"""

from __future__ import annotations

import re
import select
import sys
import threading
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.helpers import closed_events, produce, sample_rows, seed_candles
from tests.live_sidecar import fakes, live_settings, make_sink, run_sidecar, until
from tests.traders import connector, make_trader

pytestmark = pytest.mark.integration

FLOWS = ROOT / "docs" / "flows.md"
_STEP = re.compile(r"^\d+\. `([\w/.]+\.py)` — `([\w.]+)`", re.M)
_ENTRY = re.compile(r"^Entry: `([\w/.]+\.py)` — `([\w.]+)`", re.M)


def documented(flow: int) -> tuple[tuple[str, str], list[tuple[str, str]]]:
    """The entry and the ``(file, function)`` steps listed under ``## Flow <n>`` of docs/flows.md."""
    section = FLOWS.read_text().split(f"## Flow {flow} ")[1].split("\n## ")[0]
    return _ENTRY.search(section).groups(), _STEP.findall(section)


@contextmanager
def traced():
    """The project's production functions in the order of their first call, on every thread."""
    calls: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    root = f"{ROOT}/"

    def profile(frame, event, arg):
        if event != "call":
            return
        path = frame.f_code.co_filename
        if path.startswith(root) and not path.startswith(f"{root}tests/") and "/.venv/" not in path:
            key = (path[len(root):], frame.f_code.co_qualname)
            if key not in seen:
                seen.add(key)
                calls.append(key)

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


def assert_walked(flow: int, calls: list[tuple[str, str]]) -> None:
    (entry_file, entry), steps = documented(flow)
    files = {entry_file} | {f for f, _ in steps}
    assert len(steps) >= 3 and len(files) <= 6, f"flow {flow} lists {len(files)} files"
    if entry_file.startswith("dags/"):  # an Airflow task: run by the DAG tests; here, it must call the first step
        source = (ROOT / entry_file).read_text()
        assert f"def {entry}(" in source and f"{steps[0][1]}(" in source
    else:
        assert (entry_file, entry) in calls
    positions = []
    for step in steps:
        assert step in calls, f"flow {flow}: {step} did not run (ran there: {[c for c in calls if c[0] == step[0]]})"
        positions.append(calls.index(step))
    assert positions == sorted(positions), f"flow {flow}: the steps ran in another order: {sorted(zip(positions, steps))}"
    print(f"flow {flow}: {len(files)} files on the map; {len({f for f, _ in calls})} of the project's files ran in all")


def test_flow_1_a_websocket_frame_reaches_the_topic(kafka_bootstrap, topic):
    rest, ws = fakes()
    sink = make_sink(kafka_bootstrap, topic)

    async def one_closed_candle(parts) -> None:
        await until(lambda: sink.stats.published.get("binance", 0) > 0 and sink.stats.acked > 0)

    try:
        with traced() as calls:
            run_sidecar(live_settings(ws, rest), sink, one_closed_candle)
    finally:
        ws.stop()
        rest.stop()
    assert_walked(1, calls)


def test_flow_2_a_kafka_message_becomes_a_candle_row(db, kafka_bootstrap, topic):
    from klinepipe.ingest import ingest_batch

    produce(kafka_bootstrap, topic, closed_events(sample_rows(3)))
    with traced() as calls:
        result = ingest_batch(db, {"bootstrap.servers": kafka_bootstrap}, topic=topic)
    assert result.changed == 3
    assert_walked(2, calls)


def test_flow_3_new_candles_become_feature_rows_and_a_notification(db, database_url):
    from klinepipe.feature_store import compute_pending_features

    seed_candles(db, sample_rows(60))
    listener = connector(database_url)()
    listener.autocommit = True
    listener.cursor().execute("LISTEN klinepipe_features")
    with traced() as calls:
        compute_pending_features(db)
    # the NOTIFY is sent at commit but reaches the listener's socket a moment later: wait for it, then read it
    assert select.select([listener], [], [], 10)[0], "no NOTIFY klinepipe_features within 10 s"
    listener.poll()
    assert listener.notifies, "no NOTIFY klinepipe_features"
    listener.close()
    assert_walked(3, calls)


def test_flow_4_a_notification_becomes_an_order_row(db, database_url):
    from klinepipe.feature_store import compute_pending_features
    from trader.run_loop import run_forever

    seed_candles(db, sample_rows(600))
    compute_pending_features(db)
    trader, connect, steps = make_trader(database_url), connector(database_url), []

    def listen():
        conn = connect()
        conn.autocommit = True
        conn.cursor().execute("LISTEN klinepipe_features")
        return conn

    with traced() as calls:
        run_forever(trader, listen, lambda: len(steps) >= 1, 0.1, lambda line: None, on_step=steps.append)
    with db.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM trading.orders")).scalar() > 0
    assert_walked(4, calls)
