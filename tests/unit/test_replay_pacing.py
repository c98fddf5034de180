"""A replay follows the recording's clock scaled by its speed, and goes on after ``STREAMING_REPLAY_AFTER``."""

import math

import pytest

from streaming.config import load_settings, parse_speed, parse_time_ms
from streaming.replay import Recorded, frames_after, pace


def test_pace_follows_the_recording_clock_scaled_by_speed():
    now = [0.0]
    slept = []

    def sleep(d):
        slept.append(round(d, 6))
        now[0] += d

    frames = [Recorded(at, b"x") for at in (0, 60_000, 120_000)]
    list(pace(frames, 60.0, clock=lambda: now[0], sleep=sleep))

    assert slept == [1.0, 1.0]
    assert list(pace(frames, math.inf, clock=lambda: 0.0, sleep=slept.append)) == frames


def test_speed_parsing():
    assert parse_speed("60x") == 60 and parse_speed("2.5") == 2.5 and math.isinf(parse_speed("max"))
    with pytest.raises(ValueError):
        parse_speed("fast")


def test_replay_after_skips_what_happened_up_to_it_and_takes_ms_or_iso(monkeypatch):
    frames = [Recorded(t, b"f%d" % t) for t in (1_000, 2_000, 3_000)]
    monkeypatch.setenv("STREAMING_REPLAY_AFTER", "1970-01-01T00:00:02Z")

    after = load_settings()[0].replay_after

    assert after == 2_000 == parse_time_ms("2000") == parse_time_ms("1970-01-01T00:00:02")
    assert [f.at_ms for f in frames_after(frames, after)] == [3_000]
    assert list(frames_after(frames, None)) == frames and parse_time_ms(" ") is None
