"""Backoff, one line per outage, and the start-up wait (pure parts of trader.dependencies)."""

import psycopg2
import pytest

from trader.dependencies import BadDatabaseURL, Backoff, DependencyDown, Outages, classify_pg, wait_for
from trader.metrics import LoopStats


def test_backoff_doubles_up_to_the_cap_and_resets():
    b = Backoff(max_delay=5)

    assert [b.delay() for _ in range(6)] == [1, 2, 4, 5, 5, 5]
    b.reset()
    assert b.delay() == 1


def test_an_outage_is_one_line_down_and_one_line_back_whatever_the_retries():
    lines, now, stats = [], [100.0], LoopStats()
    o = Outages(lines.append, stats, clock=lambda: now[0])

    for _ in range(50):
        o.failed("postgres", "connection refused")
    assert stats.dependency_up["postgres"] is False and stats.outages["postgres"] == 1
    now[0] = 161.0
    o.recovered("postgres")
    o.recovered("postgres")

    assert len(lines) == 2 and "postgres down: connection refused" in lines[0] and "back after 61 s" in lines[1]
    assert stats.dependency_up["postgres"] is True and stats.outages["postgres"] == 1


def test_the_start_up_wait_is_bounded_and_says_how_long():
    now, slept = [0.0], []

    def sleep(s):
        slept.append(s)
        now[0] += s

    def refused():
        raise psycopg2.OperationalError('connection to server at "127.0.0.1", port 1 failed: Connection refused')

    with pytest.raises(DependencyDown, match=r"Connection refused \(gave up after waiting 10 s, TRADER_STARTUP_WAIT\)"):
        wait_for(refused, classify_pg, 10, 4, sleep=sleep, clock=lambda: now[0])
    assert sum(slept) == pytest.approx(10) and max(slept) <= 4


def test_a_bad_database_url_is_not_waited_for():
    def missing():
        raise psycopg2.OperationalError('connection to server failed: FATAL:  database "nope" does not exist')

    with pytest.raises(BadDatabaseURL, match='database "nope" does not exist'):
        wait_for(missing, classify_pg, 60, 4, sleep=lambda s: pytest.fail("waited for a bad value"), clock=lambda: 0.0)
