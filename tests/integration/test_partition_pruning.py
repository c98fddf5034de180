"""Bounded-time reads of the partitioned history touch only the partitions of their range (EXPLAIN): the trader's
reads, the features DAG's window reads and writes, the README's bounded example."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from klinepipe import feature_store, feature_windows
from klinepipe.partitions import ensure_partitions
from tests.conftest import ROOT
from tests.helpers import partitions_dropped_after, rolled_back
from trader.market_reads import candles_after, load_new_features

pytestmark = pytest.mark.integration

class _Explaining:
    """A cursor that EXPLAINs every statement before running it, keeping the relations each plan scans."""

    def __init__(self, cur):
        self._cur, self.scanned = cur, []

    def execute(self, sql, params=None):
        self._cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        self.scanned.append(set(_relations(self._cur.fetchone()[0][0]["Plan"])))
        self._cur.execute(sql, params)

    def __getattr__(self, name):
        return getattr(self._cur, name)


def _relations(plan: dict):
    if "Relation Name" in plan:
        yield plan["Relation Name"]
    for child in plan.get("Plans", []):
        yield from _relations(child)


@pytest.fixture
def months(engine):
    """Partitions for January to June 2019 (dropped afterwards: the session's database is shared)."""
    with partitions_dropped_after(engine):
        ensure_partitions(engine, datetime(2019, 1, 1, tzinfo=timezone.utc), datetime(2019, 6, 1, tzinfo=timezone.utc))
        yield engine


def _in_2019(scanned: set[str], table: str) -> set[str]:
    return {r for r in scanned if r.startswith(f"{table}_p2019")}


def test_the_traders_reads_scan_only_the_months_they_ask_for(months):
    after = datetime(2019, 5, 10, tzinfo=timezone.utc)
    with rolled_back(months) as raw:
        cur = _Explaining(raw)
        candles_after(cur, "BTCUSDT", "1m", int(after.timestamp() * 1000), 100)
        load_new_features(cur, "BTCUSDT", "1m", after, 50, ("sma_10", "sma_30"))

    assert _in_2019(cur.scanned[0], "candles") == {"candles_p20190501", "candles_p20190601"}
    # the rows after `after` (May, June) and the `history` rows before it: those have no lower bound (a series may
    # have gaps), so January to May are planned; at run time the backward scan stops in the newest month with rows
    assert len(_in_2019(cur.scanned[-1], "features")) == 6  # (the reads before it: candles, the spec-set check)
    with rolled_back(months) as raw:
        cur = _Explaining(raw)
        load_new_features(cur, "BTCUSDT", "1m", None, 50, ("sma_10", "sma_30"))
    assert len(_in_2019(cur.scanned[-1], "features")) == 6  # the first read has no bound: it may need every month


def test_the_features_window_reads_and_writes_scan_only_their_range(months):
    params = {"s": "BTCUSDT", "i": "1m", "t": datetime(2019, 3, 5, tzinfo=timezone.utc), "warmup": 60,
              "end": datetime(2019, 3, 20, tzinfo=timezone.utc), "v": "v2"}
    window = feature_windows._WINDOW.split("COPY (", 1)[1].rsplit(")\nTO STDOUT", 1)[0]
    with rolled_back(months) as raw:
        window_sql = window.format(op=">=", limit="",
                                   **{k: raw.mogrify("%s", (params[k],)).decode() for k in ("s", "i", "t", "end")})
        cur = _Explaining(raw)
        for sql in (feature_windows._WINDOW_END, window_sql, feature_store._DELETE.format(op=">=")):
            cur.execute(sql, params)
    end_read, window_read, delete = cur.scanned
    assert _in_2019(window_read, "candles") == {"candles_p20190301"} and "candles_default" not in window_read
    assert _in_2019(delete, "features") == {"features_p20190301"} and "features_default" not in delete
    assert _in_2019(end_read, "candles") == {"candles_p20190301", "candles_p20190401", "candles_p20190501",
                                             "candles_p20190601"}


def test_the_readme_bounded_example_scans_one_month(months):
    sql = next(line for line in (ROOT / "README.md").read_text().splitlines() if "open_time >= '2024-03-01'" in line)
    sql = "SELECT open_time, close, sma_10, sma_30, rsi_14, macd FROM market.features WHERE symbol = 'BTCUSDT'\n" + sql
    ensure_partitions(months, datetime(2024, 3, 1, tzinfo=timezone.utc), datetime(2024, 3, 2, tzinfo=timezone.utc))
    with rolled_back(months) as raw:
        cur = _Explaining(raw)
        cur.execute(sql)
    assert cur.scanned[0] == {"features_p20240301"}
