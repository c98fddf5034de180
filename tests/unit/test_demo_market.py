"""The demo market (issue 13.3): the bundled real candles, looped on the present's clock, never running dry."""

from __future__ import annotations

from decimal import Decimal

import pytest

from streaming.config import load_settings, parse_resume_points
from streaming.demo_market import DemoClock, DemoSeries, start_point
from streaming.replay import Recorded, frames_after
from tests.conftest import SAMPLE
from tests.helpers import sample_rows

MINUTE = 60_000


@pytest.fixture(scope="module")
def btc_1m() -> DemoSeries:
    return DemoSeries.from_file(SAMPLE / "BTCUSDT-1m.csv.gz")


def _k(candle) -> dict:
    return candle.event["k"]


def test_candles_are_the_bundled_ones_shifted_to_the_present_and_close_on_their_minute(btc_1m):
    cycle = 2 * len(btc_1m.rows) * MINUTE  # there and back
    now = 1_764_547_200_000 // cycle * cycle + 17 * MINUTE  # the 18th candle of a forward lap opens now
    candles = btc_1m.candles(now)
    first, second = next(candles), next(candles)

    assert _k(first)["t"] == now and _k(first)["T"] == now + MINUTE - 1 and first.event["E"] == now + MINUTE
    assert second.open_time == now + MINUTE and first.close_ms == now + MINUTE and not first.mirrored
    row = btc_1m.rows[17]  # one real candle of the file, its decimals as written there
    assert [_k(first)[f] for f in "ohlcv"] == [row.open, row.high, row.low, row.close, row.volume] and _k(first)["x"] is True


def test_across_a_lap_prices_continue_and_open_times_only_go_up(btc_1m):
    n = len(btc_1m.rows)
    end_of_lap = (n * 7 - 3) * MINUTE  # lap 6 (forward) ends 3 candles later, lap 7 plays backwards
    candles = [c for _, c in zip(range(8), btc_1m.candles(end_of_lap))]

    opens = [c.open_time for c in candles]
    assert opens == [end_of_lap + i * MINUTE for i in range(8)]
    assert [c.lap for c in candles] == [6, 6, 6, 7, 7, 7, 7, 7] and [c.mirrored for c in candles] == [False] * 3 + [True] * 5
    last_forward, first_back = _k(candles[2]), _k(candles[3])
    assert first_back["o"] == last_forward["c"] == btc_1m.rows[-1].close  # the new lap opens at the last close
    assert (first_back["h"], first_back["l"], first_back["c"]) == (btc_1m.rows[-1].high, btc_1m.rows[-1].low, btc_1m.rows[-1].open)
    assert _k(candles[4])["o"] == btc_1m.rows[-2].close
    for c in candles:
        k = c.event["k"]
        assert Decimal(k["l"]) <= min(Decimal(k["o"]), Decimal(k["c"])) <= max(Decimal(k["o"]), Decimal(k["c"])) <= Decimal(k["h"])


def test_the_backward_lap_ends_where_the_next_forward_lap_begins(btc_1m):
    cycle_start = 2 * len(btc_1m.rows) * 5 * MINUTE
    last_back, first_forward = btc_1m.candle(cycle_start - MINUTE), btc_1m.candle(cycle_start)

    assert last_back.mirrored and not first_forward.mirrored and first_forward.lap == last_back.lap + 1
    assert _k(last_back)["c"] == _k(first_forward)["o"] == btc_1m.rows[0].open


def test_a_restart_produces_the_candles_a_run_without_it_would_have(btc_1m):
    start = 1_764_547_200_000
    straight = [c.frame for _, c in zip(range(10), btc_1m.candles(start))]
    resumed_after = btc_1m.candle(start + 3 * MINUTE).close_ms  # the 4th candle was the newest stored

    again = [c.frame for _, c in zip(range(6), btc_1m.candles(resumed_after))]

    assert again == straight[4:]


def test_where_a_series_starts(btc_1m):
    now = 1_764_547_200_000 + 30 * 1000  # 30 s into a minute
    floor = 1_764_547_200_000 - 100 * MINUTE  # 100 closed candles before the one that is open now

    assert start_point(btc_1m, None, now, 100) == (floor, "starting with the last 100 candles")
    assert start_point(btc_1m, now - 5 * MINUTE, now, 100)[0] == now - 5 * MINUTE
    old, why = start_point(btc_1m, now - 10_000 * MINUTE, now, 100)
    assert old == floor and "older than 100 candles" in why and "not filled" in why


def test_the_clock_runs_at_the_wall_clock_or_faster():
    at1, at60 = DemoClock(1_000_000, 1.0, wall_start=50.0), DemoClock(1_000_000, 60.0, wall_start=50.0)

    assert at1.now_ms(51.0) == 1_001_000 and at1.wall_at(1_060_000) == 110.0
    assert at60.now_ms(51.0) == 1_060_000 and at60.wall_at(1_060_000) == 51.0


def test_the_demo_market_refuses_intervals_without_a_fixed_grid():
    with pytest.raises(ValueError, match="fixed length"):
        DemoSeries(sample_rows(3), "BTCUSDT", "1w")


def test_resume_points_per_series_or_for_all(monkeypatch):
    assert parse_resume_points("2000") == 2000
    assert parse_resume_points("BTCUSDT:1m=1970-01-01T00:00:02Z, btcusdt:1h=5000,7000") == {
        "BTCUSDT:1m": 2000, "BTCUSDT:1h": 5000, "*": 7000}
    with pytest.raises(ValueError, match="SYMBOL:interval=TIME"):
        parse_resume_points("BTCUSDT=5000")
    monkeypatch.setenv("STREAMING_REPLAY_AFTER", "BTCUSDT:1m=2000,BTCUSDT:1h=1000")
    after = load_settings()[0].replay_after

    frames = [Recorded(t, b"x", series=s) for s in ("BTCUSDT:1m", "BTCUSDT:1h", "ETHUSDT:1m") for t in (1_000, 2_000, 3_000)]
    kept = [(f.series, f.at_ms) for f in frames_after(frames, after)]
    assert kept == [("BTCUSDT:1m", 3_000), ("BTCUSDT:1h", 2_000), ("BTCUSDT:1h", 3_000),
                    ("ETHUSDT:1m", 1_000), ("ETHUSDT:1m", 2_000), ("ETHUSDT:1m", 3_000)]


def test_demo_settings_name_themselves(monkeypatch):
    from streaming.errors import SettingsError

    monkeypatch.setenv("STREAMING_DEMO_SPEED", "max")
    with pytest.raises(SettingsError, match="STREAMING_DEMO_SPEED"):
        load_settings()
    monkeypatch.setenv("STREAMING_DEMO_SPEED", "10x")
    assert load_settings(mode="demo")[0].demo_speed == 10.0
