"""Exactly once into PostgreSQL: 100,000 messages with duplicates, out-of-order updates and 1 % malformed,
loaded in bounded batches (partition groups alternating, as mapped tasks do) that merge in small
sub-batches, one batch crashed between COPY and commit and another right after its commit. The candles equal the expected set exactly and the
dead letters equal the malformed set."""

import random

import pytest

from klinepipe.ingest import ingest_batch
from tests.exactly_once_drill import TOTAL, assert_loaded_exactly_once, drill_messages
from tests.helpers import produce

pytestmark = pytest.mark.integration


class Crash(Exception):
    pass


def test_100k_messages_with_duplicates_disorder_malformed_and_two_crashes(engine, kafka_bootstrap, topic):
    rng = random.Random(20261125)
    msgs = drill_messages(rng)
    assert len(msgs) == TOTAL
    produce(kafka_bootstrap, topic, [m[1] for m in msgs], keys=[m[0] for m in msgs])
    config = {"bootstrap.servers": kafka_bootstrap}
    groups = [[0, 2, 4], [1, 3, 5]]

    def run(i: int, stage: str | None = None):
        def checkpoint(at: str) -> None:
            if at == stage:
                raise Crash(at)
        # small sub-batch merges: several run (on the worker thread) before each crash
        return ingest_batch(engine, config, topic=topic, partitions=groups[i % 2], max_messages=15_000, merge_every=1_500,
                            checkpoint=checkpoint)

    with pytest.raises(Crash):
        run(0, "staged")      # killed between COPY and commit: nothing of it stays
    with pytest.raises(Crash):
        run(1, "committed")   # killed right after commit: the retry must not load it again
    i = 2
    while True:  # alternate the two partition groups until both have nothing left
        read = run(i).messages + run(i + 1).messages
        i += 2
        if read == 0:
            break

    assert_loaded_exactly_once(engine, topic, msgs)
