"""The trader process's forever loop: step on every features notification (or poll), through outages."""

from __future__ import annotations

import select
import time
from collections.abc import Callable

import psycopg2

from trader.dependencies import Backoff, Outages, pg_reason
from trader.loop import Trader


def run_forever(trader: Trader, listen: Callable, should_stop: Callable[[], bool], poll_interval: float,
                emit: Callable[[str], None], on_step: Callable[[float], None] = lambda seconds: None,
                outages: Outages | None = None, max_delay: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> None:
    """Step on every ``NOTIFY klinepipe_features`` and at least every ``poll_interval`` seconds, until ``should_stop``.

    ``listen()`` opens a connection that LISTENs on ``klinepipe_features``. PostgreSQL or the venue going away
    never ends the loop: ``outages`` reports it once (and once when it is back), the loop retries with a backoff
    capped at ``max_delay`` seconds, and the ledger's crash-safety (orders recorded before they are sent,
    looked up by client order id before any resend) means a step cut short orders nothing twice.
    ``on_step`` gets each step's duration in seconds (the metrics' seam)."""
    outages = outages or Outages(emit)
    backoff, listen_conn = Backoff(max_delay), None

    def pause(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not should_stop() and time.monotonic() < deadline:
            sleep(min(0.2, max(deadline - time.monotonic(), 0)))

    while not should_stop():
        try:
            if not outages.up("binance"):
                if not trader.probe_broker():
                    pause(backoff.delay())
                    continue
                outages.recovered("binance")
            if listen_conn is None:
                listen_conn = listen()
            started = time.monotonic()
            decisions = trader.step()
            outages.recovered("postgres")
            for decision in decisions:
                emit(decision.line())
            on_step(time.monotonic() - started)
            if trader.broker_error is not None:
                outages.failed("binance", trader.broker_error)
                pause(backoff.delay())
                continue
            backoff.reset()
            _wait_for_notify(listen_conn, poll_interval, should_stop)
        except (psycopg2.DatabaseError, psycopg2.InterfaceError) as exc:
            if not isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError) and not trader.connection_lost():
                raise  # an SQL error on a live connection is a bug, not an outage
            outages.failed("postgres", pg_reason(exc))
            trader.reset_connection()
            if listen_conn is not None:
                try:
                    listen_conn.close()
                except psycopg2.Error:
                    pass
                listen_conn = None
            pause(backoff.delay())
    if listen_conn is not None:
        listen_conn.close()


STOP_CHECK_S = 0.5


def _wait_for_notify(listen_conn, seconds: float, should_stop: Callable[[], bool]) -> None:
    """Until a notification arrives, ``seconds`` passed or ``should_stop``: a stop (SIGTERM) is seen within
    ``STOP_CHECK_S`` however long the poll interval (``select`` is resumed after a signal, PEP 475)."""
    deadline = time.monotonic() + seconds
    while not should_stop():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if select.select([listen_conn], [], [], min(left, STOP_CHECK_S))[0]:
            listen_conn.poll()
            listen_conn.notifies.clear()
            return
