"""The candle merge looks up each row's stored version by key, even in a partition the planner believes empty.

Found by ``bench ingest`` (1 loader at 22 % of PostgreSQL's floor): in a fresh database, and in every month's new
partition until it is analysed, the planner saw an empty table and planned the merge's prior-version lookup as a
sequential scan per merged row; the scan reads the pages the statement is filling, so a load was quadratic in its
own size (300k candles in one statement: 10 minutes, 4 s with the key lookup)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from klinepipe.candle_store import copy_buffer, merge_copy
from klinepipe.kline import parse_kline_event
from tests.helpers import closed_events, rolled_back, sample_rows, shifted_rows

pytestmark = pytest.mark.integration

MONTH = datetime(2015, 6, 1, tzinfo=timezone.utc)  # no other test makes this month's partition


class _ExplainingMerge:
    """A cursor that EXPLAINs the merge statement (the one that starts ``WITH merged``) before running it."""

    def __init__(self, cur):
        self._cur, self.plans = cur, []

    def execute(self, sql, params=None):
        if sql.lstrip().startswith("WITH merged"):
            self._cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            self.plans.append(self._cur.fetchone()[0][0]["Plan"])
        self._cur.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._cur, name)


def _scans(plan: dict):
    if "Relation Name" in plan:
        yield plan["Node Type"], plan["Relation Name"]
    for child in plan.get("Plans", []):
        yield from _scans(child)


def test_the_merge_reads_a_fresh_partition_by_key_not_by_scanning_it(engine):
    rows = shifted_rows(sample_rows(2000), int(MONTH.timestamp() * 1000))
    with rolled_back(engine) as cur:  # the new partition is dropped with the rollback
        cur.execute("SELECT market.ensure_history_partitions(%s, %s)", (MONTH, MONTH))
        assert cur.fetchone()[0] >= 1
        cur.execute("ANALYZE market.candles_p20150601")  # statistics taken while it was empty, as autovacuum does
        explaining = _ExplainingMerge(cur)
        merged = merge_copy(explaining, copy_buffer((parse_kline_event(e), "replay") for e in closed_events(rows)))
        assert merged == 2000
        scans = [s for plan in explaining.plans for s in _scans(plan) if s[1].startswith("candles_p2015")]
        assert scans, "the plan reads the new partition"
        assert all(kind != "Seq Scan" for kind, _ in scans), scans
        cur.execute("SHOW enable_seqscan")
        assert cur.fetchone()[0] == "on"  # the merge leaves the caller's planner settings as they were
