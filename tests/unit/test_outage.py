"""The shared outage tracker: one line per outage and one on recovery, capped backoff, figures for a metric."""

import logging

import pytest

from klinepipe.outage import Outage, one_line


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_logs_once_however_many_retries_then_once_on_recovery(caplog):
    clock, log = Clock(), logging.getLogger("test.outage")
    pg = Outage("postgres", log, backoff_initial=0.5, backoff_max=4, clock=clock)

    with caplog.at_level(logging.INFO, logger="test.outage"):
        delays = [pg.failed(ConnectionError("refused\nsecond line")) for _ in range(8)]
        down = (pg.up, pg.outages, pg.retries)
        clock.now += 12.5
        pg.ok()
        pg.ok()

    assert delays == [0.5, 1, 2, 4, 4, 4, 4, 4]
    assert down == (False, 1, 8)
    assert (pg.up, pg.outages, pg.retries, pg.down_for) == (True, 1, 0, 0.0)
    assert len(caplog.records) == 2
    assert "postgres" in caplog.records[0].getMessage() and "refused" in caplog.records[0].getMessage()
    assert "second line" not in caplog.records[0].getMessage()
    assert "12.5s" in caplog.records[1].getMessage() and "8 failed" in caplog.records[1].getMessage()


def test_a_second_outage_is_counted_and_starts_from_the_initial_delay(caplog):
    pg = Outage("broker", logging.getLogger("test.outage"), backoff_initial=1, backoff_max=30, clock=Clock())
    for _ in range(5):
        pg.failed("down")
    pg.ok()

    assert pg.failed("down again") == 1
    assert pg.outages == 2


def test_success_while_up_logs_nothing(caplog):
    pg = Outage("rest", logging.getLogger("test.outage"))
    with caplog.at_level(logging.INFO, logger="test.outage"):
        pg.ok()
    assert caplog.records == [] and pg.outages == 0


@pytest.mark.parametrize("initial,cap", [(0, 1), (2, 1), (-1, 5)])
def test_backoff_must_be_positive_and_capped_above_its_start(initial, cap):
    with pytest.raises(ValueError):
        Outage("x", logging.getLogger("x"), backoff_initial=initial, backoff_max=cap)


def test_one_line_keeps_the_type_and_first_line_only():
    assert one_line(OSError("connection refused\n\tIs the server running?")) == "OSError: connection refused"
    assert one_line(RuntimeError()) == "RuntimeError"
    assert len(one_line(ValueError("x" * 1000))) < 220
