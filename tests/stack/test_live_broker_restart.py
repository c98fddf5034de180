"""Live mode (fake Binance websocket + REST): the loader is held back while candles pile up in the broker, the
broker is killed with them, and the supervisor's REST history load brings exactly those candles back without
waiting for the hourly gap search."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.fake_binance import FakeBinance
from tests.fake_binance.ws import FakeStreams
from tests.stack.runner import Run, count

pytestmark = pytest.mark.stack


def _stored(url: str) -> int:
    return count(url, "SELECT count(*) FROM market.candles WHERE is_closed")


def _wait(what: str, predicate, timeout: float, run: Run) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}\n" + "".join(run.lines[-40:])
        assert run.proc.poll() is None, "".join(run.lines[-40:])
        time.sleep(0.5)


def test_candles_lost_with_the_broker_come_back_over_rest_in_live_mode(tmp_path):
    rest = FakeBinance().start()
    rest.add_symbol("BTCUSDT", "BTC", "USDT")
    ws = FakeStreams(symbols=("BTCUSDT",), step_ms=6_000, tick=0.2, on_close=rest.seed_klines).start()  # 1m = 2 s
    run = Run(tmp_path / "data", STREAMING_MODE="live", STREAMING_SYMBOLS="BTCUSDT", STREAMING_INTERVALS="1m",
              STREAMING_WS_URL=ws.url, BINANCE_REST_URL=rest.url,
              STREAMING_METRICS_PORT="0", TRADER_METRICS_PORT="0")
    try:
        url = run.wait_for(r"SQL\s+: psql '([^']+)'", 300).group(1)
        run.wait_for(r"streaming: source=live", 60)
        _wait("10 closed candles stored", lambda: _stored(url) >= 10, 240, run)

        scheduler = run.pid_of("airflow-scheduler")
        os.killpg(scheduler, signal.SIGSTOP)  # the loader falls behind: closed candles pile up in the broker only
        try:
            held = _stored(url)
            time.sleep(12)  # ~6 candles close meanwhile (the fake's clock); not an assertion
            assert _stored(url) == held
            os.kill(run.pid_of("tansu"), signal.SIGKILL)
            run.wait_for(r"kafka: the embedded broker was restarted empty", 60)
        finally:
            os.killpg(scheduler, signal.SIGCONT)
        hole = run.wait_for(r"backfill: the broker was replaced: 1m candles of BTCUSDT missing in \[(\S+), (\S+)\): "
                            r"a REST history load requested", 240)
        print(hole.group(0))

        def complete() -> bool:  # no hole from the first candle to the newest
            return count(url, "SELECT count(*) - (extract(epoch FROM max(open_time) - min(open_time)) / 60 + 1)"
                              " FROM market.candles") == 0
        _wait("the series without a hole", complete, 240, run)
        refilled = count(url, f"SELECT count(*) FROM market.candles WHERE source = 'backfill'"
                              f" AND open_time >= '{hole.group(1)}' AND open_time < '{hole.group(2)}'")
        assert refilled >= 5
        print(f"live mode: {refilled} candles lost with the broker came back over REST")
    finally:
        leftovers = run.stop()
        ws.stop()
        rest.stop()
    assert leftovers == []
