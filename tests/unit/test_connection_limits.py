"""Reconnect backoff (jittered, exponential, capped) and Binance's per-window connection and message limits."""

import pytest

from streaming.limits import SlidingWindow, backoff_delay


def test_backoff_is_jittered_exponential_and_capped():
    low = [backoff_delay(a, 0.5, 30.0, rand=lambda lo, hi: lo) for a in range(10)]
    high = [backoff_delay(a, 0.5, 30.0, rand=lambda lo, hi: hi) for a in range(10)]

    assert high[:4] == [0.5, 1.0, 2.0, 4.0] and max(high) == 30.0 and low[0] == 0.25 and low[-1] == 15.0


def test_sliding_window_allows_n_events_per_window():
    now = [0.0]
    window = SlidingWindow(3, 300.0, clock=lambda: now[0])

    for _ in range(3):
        assert window.wait_needed() == 0.0
        window.record()
        now[0] += 1.0

    assert window.wait_needed() == pytest.approx(297.0)
    now[0] = 300.5
    assert window.wait_needed() == 0.0
