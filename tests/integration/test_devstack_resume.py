"""``make run`` resumes its replay after the newest replayed candle stored, not at the start of the file."""

import pytest

from klinepipe.backfill import load_klines
from klinepipe.binance_files import row_to_kline
from klinepipe.devstack import replay_resume_point
from tests.helpers import sample_rows

pytestmark = pytest.mark.integration


def test_the_resume_point_is_the_newest_replayed_event_stored(engine, database_url):
    assert replay_resume_point(database_url) == ""  # nothing stored: replay from the start

    rows = sample_rows(30)
    load_klines(engine, (row_to_kline(r, "BTCUSDT", "1m", int(r[6]) + 1) for r in rows[:20]), source="replay")
    load_klines(engine, (row_to_kline(r, "ETHUSDT", "1m", int(r[6]) + 1) for r in rows[20:]), source="backfill")

    assert replay_resume_point(database_url) == str(int(rows[19][6]) + 1)  # the replay's E of its 20th candle
