"""The SQL ``make run``'s banner suggests runs on the stack's schema and reads a series from its index: no sort of
every candle (at 20M candles the old ``ORDER BY open_time DESC LIMIT 5`` took seconds)."""

from __future__ import annotations

import json

from devstack.banner import SQL_EXAMPLES
from tests.helpers import sample_rows, seed_candles


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_the_banners_queries_run_and_read_candles_without_sorting_them(db):
    seed_candles(db, sample_rows(300))
    with db.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # the plan a big table gets, on a small one
        for query in SQL_EXAMPLES:
            rows = conn.exec_driver_sql(query).fetchall()
            if "market.candles" in query:
                assert len(rows) == 5 and rows[0].open_time > rows[-1].open_time
                plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + query.rstrip(";")).scalar()
                plan = json.loads(plan) if isinstance(plan, str) else plan
                kinds = [n["Node Type"] for n in _plan_nodes(plan[0]["Plan"])]
                assert "Sort" not in kinds and "Seq Scan" not in kinds, kinds
