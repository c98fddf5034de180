"""The Trading page says when a series is replayed (the demo market), not live (issue 13.3)."""

from __future__ import annotations

import pytest

from klinepipe.backfill import load_klines
from klinepipe.kline import row_to_kline
from klinepipe_trading import queries
from tests.conftest import ROOT
from tests.helpers import sample_rows

pytestmark = pytest.mark.integration


def test_a_series_whose_newest_candle_was_replayed_is_marked(engine):
    rows = sample_rows(10)
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1m", int(r[6]) + 1) for r in rows), source="replay")
    load_klines(engine, (row_to_kline(r, "ETHUSDT", "1m", int(r[6]) + 1) for r in rows[:5]), source="replay")
    load_klines(engine, (row_to_kline(r, "ETHUSDT", "1m", int(r[6]) + 1) for r in rows[5:]), source="binance")

    with engine.connect() as c:
        marked = {(s["symbol"], s["replayed"]) for s in queries.list_series(c)}

    assert marked == {("BTCUSDT", True), ("ETHUSDT", False)}  # live now: no notice for it
    page = (ROOT / "plugins" / "klinepipe_trading" / "static").joinpath
    assert 'id="replay-notice"' in page("trading.html").read_text()
    assert "replayed data, not live prices" in page("trading.js").read_text()
