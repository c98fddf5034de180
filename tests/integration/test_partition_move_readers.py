"""A reader never sees rows vanish while ``ensure_history_partitions`` moves them out of the DEFAULT partition.

Found in ``make run`` (the suite's test_make_run): the ingest DAG made the replay month's partition while the
trader marked its equity. The move deletes the month from DEFAULT, copies it into a new table and attaches that;
ATTACH needs only SHARE UPDATE EXCLUSIVE on the parent, so a query that planned with the partitions it knew (no
new one) and ran after the commit found the month in neither place: the position's mark price was no candle,
the equity lost the position's whole value, and the daily-loss kill switch went to REDUCING on a paper account
that had lost 7 USDT. The reader here is a second connection whose query waits on the move and runs once it commits.
"""

from __future__ import annotations

import threading
import time
from contextlib import closing
from datetime import datetime, timezone

import psycopg2
import pytest

from tests.helpers import dsn_of, partitions_dropped_after, sample_rows, seed_candles, shifted_rows

pytestmark = pytest.mark.integration

MONTH = datetime(2016, 2, 1, tzinfo=timezone.utc)  # no other test makes this month's partition
_READ = ("SELECT count(*), (SELECT c.close FROM market.candles c WHERE c.symbol = 'BTCUSDT'"
         " AND c.open_time <= '2016-02-01 12:00+00' ORDER BY c.open_time DESC LIMIT 1)"
         " FROM market.candles WHERE symbol = 'BTCUSDT' AND open_time >= '2016-02-01' AND open_time < '2016-03-01'")


@pytest.fixture
def month_in_default(engine, database_url):
    with partitions_dropped_after(engine):
        seed_candles(engine, shifted_rows(sample_rows(1000), int(MONTH.timestamp() * 1000)))
        yield dsn_of(database_url)


def test_a_query_waiting_on_a_partition_move_sees_every_moved_row(month_in_default):
    dsn = month_in_default
    with closing(psycopg2.connect(dsn)) as check, check.cursor() as cur:
        cur.execute("SELECT count(*) FROM market.candles_default WHERE open_time >= %s", (MONTH,))
        assert cur.fetchone()[0] == 1000  # the month waits in DEFAULT
        cur.execute(_READ)
        expected = cur.fetchone()
    assert expected[0] == 1000 and expected[1] is not None

    mover = psycopg2.connect(dsn)
    reader = psycopg2.connect(dsn)
    reader.autocommit = True
    got: list = []
    try:
        with mover.cursor() as cur:
            cur.execute("SELECT market.ensure_history_partitions(%s, %s)", (MONTH, MONTH))
            assert cur.fetchone()[0] >= 1  # made, not committed yet
        with reader.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]

        def read() -> None:
            with reader.cursor() as rcur:
                rcur.execute(_READ)
                got.append(rcur.fetchone())

        thread = threading.Thread(target=read)
        thread.start()
        with closing(psycopg2.connect(dsn)) as watch:
            watch.autocommit = True  # pg_stat_activity is read once per transaction: each look its own
            cur = watch.cursor()
            for _ in range(200):  # until the reader waits on the move's locks (or has its answer already)
                cur.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
                if cur.fetchone()[0] == "Lock" or got:
                    break
                time.sleep(0.05)
        mover.commit()
        thread.join(30)
    finally:
        mover.close()
        reader.close()
    assert got == [expected], "a reader of the month during its partition move saw the rows vanish"
