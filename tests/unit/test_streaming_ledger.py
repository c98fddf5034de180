"""The closed-candle ledger: exactly once, gaps found from the data, held frames released in order."""

import random

import pytest
from streaming.closed_candle_ledger import DUPLICATE, HOLD, PUBLISH, ClosedCandleLedger, Verdict, next_open_time

KEY, M = b"BTCUSDT:1m", 60_000


@pytest.mark.parametrize(("t", "interval", "nxt"), [
    (0, "1s", 1_000), (0, "1m", 60_000), (0, "3d", 259_200_000),
    (1_709_510_400_000, "1w", 1_710_115_200_000),  # Monday 2024-03-04 -> Monday 2024-03-11
    (1_701_388_800_000, "1M", 1_704_067_200_000),  # 2023-12-01 -> 2024-01-01
    (1_706_745_600_000, "1M", 1_709_251_200_000),  # 2024-02-01 -> 2024-03-01 (leap year)
])
def test_next_open_time(t, interval, nxt):
    assert next_open_time(t, interval) == nxt


def test_updates_then_one_close_then_the_repeat_is_a_duplicate():
    ledger = ClosedCandleLedger()

    verdicts = [ledger.observe(KEY, "1m", 0, False), ledger.observe(KEY, "1m", 0, True), ledger.observe(KEY, "1m", 0, True),
                ledger.observe(KEY, "1m", M, False), ledger.observe(KEY, "1m", 0, False)]

    assert verdicts == [Verdict(PUBLISH), Verdict(PUBLISH), Verdict(DUPLICATE), Verdict(PUBLISH), Verdict(PUBLISH)]
    assert ledger.last_closed(KEY) == 0


def test_a_skipped_candle_is_a_gap_and_closes_are_held_until_the_backfill_ends():
    ledger = ClosedCandleLedger()
    ledger.observe(KEY, "1m", 0, True)

    first = ledger.observe(KEY, "1m", 3 * M, False)  # candles M and 2M never closed on this connection
    held = ledger.observe(KEY, "1m", 3 * M, True)
    ledger.hold(KEY, 3 * M, "close-3")
    gap = ledger.start_backfill(KEY)
    admitted = [ledger.admit_backfilled(KEY, t) for t in (0, M, 2 * M)]
    assert ledger.start_backfill(KEY) is None
    released = ledger.finish_backfill(KEY)

    assert first == Verdict(PUBLISH, gap=True) and held == Verdict(HOLD)
    assert gap == ("1m", M, 3 * M) and admitted == [False, True, True]
    assert released == ["close-3"]
    assert ledger.observe(KEY, "1m", 3 * M, True) == Verdict(PUBLISH) and ledger.last_closed(KEY) == 3 * M


def test_without_backfill_gaps_are_reported_but_nothing_is_held():
    ledger = ClosedCandleLedger(fill_gaps=False)
    ledger.observe(KEY, "1m", 0, True)

    verdicts = [ledger.observe(KEY, "1m", 3 * M, False), ledger.observe(KEY, "1m", 3 * M, True)]

    assert verdicts == [Verdict(PUBLISH, gap=True), Verdict(PUBLISH)] and ledger.start_backfill(KEY) is None


def _deliver(ledger, truth_closed, frames, published):
    """Push frames through the ledger; backfill gaps at once from ``truth_closed`` (a perfect REST)."""
    for t, closed in frames:
        verdict = ledger.observe(KEY, "1m", t, closed)
        if verdict.route is PUBLISH and closed:
            published.append(t)
        elif verdict.route is HOLD:
            ledger.hold(KEY, t, (t, closed))
        if verdict.gap:
            while (gap := ledger.start_backfill(KEY)) is not None:
                published.extend(c for c in truth_closed if gap[1] <= c < gap[2] and ledger.admit_backfilled(KEY, c))
            _deliver(ledger, truth_closed, ledger.finish_backfill(KEY), published)


def _random_run(seed: int) -> tuple[list[int], list[tuple[int, bool]], int]:
    """1-3 connections over one series, each seeing a window of it with ~30 % of frames lost, interleaved."""
    rng = random.Random(seed)
    n = rng.randint(5, 40)
    stream = [f for c in range(n) for f in [(c * M, False)] * rng.randint(0, 3) + [(c * M, True)]]
    stream.append((n * M, False))  # the next candle has started: everything before it is closed
    connections = []
    for _ in range(rng.randint(1, 3)):
        a = rng.randrange(len(stream))
        connections.append([f for f in stream[a:] if rng.random() > 0.3])
    connections[-1].append(stream[-1])
    merged = []
    while any(connections):
        conn = rng.choice([c for c in connections if c])
        merged.append(conn.pop(0))
    ledger, published = ClosedCandleLedger(), []
    _deliver(ledger, [c * M for c in range(n)], merged, published)
    return published, merged, n


def test_any_mix_of_drops_and_overlapping_connections_publishes_each_closed_candle_once_in_order():
    for seed in range(500):
        published, merged, n = _random_run(seed)

        start = published[0] if published else n * M
        assert start <= merged[0][0], seed  # nothing from the first frame seen on is missing...
        assert published == [c * M for c in range(n) if c * M >= start], seed  # ...or repeated, or out of order
