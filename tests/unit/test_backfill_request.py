from datetime import datetime, timezone

import pytest

from klinepipe.backfill_request import FillGaps, ImportFiles, LoadHistory, backfill_request
from klinepipe.errors import ConfigError

UTC = timezone.utc
FORM = {"symbols": [], "interval": "1m", "start": None, "end": None, "files": "", "lookback_days": 7}  # the defaults


def test_the_three_requests():
    assert backfill_request(FORM) == FillGaps(7)
    assert backfill_request({**FORM, "symbols": ["btcusdt ", "ETHUSDT"], "interval": "1h",
                             "start": "2024-03-01T00:00:00Z", "end": "2024-03-02T00:00:00"}) == LoadHistory(
        ("BTCUSDT", "ETHUSDT"), "1h", datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))


def test_a_files_glob_lists_the_matching_files_in_order(tmp_path):
    for name in ("BTCUSDT-1m-2024-02.zip", "BTCUSDT-1m-2024-01.zip"):
        (tmp_path / name).write_bytes(b"")

    req = backfill_request({**FORM, "files": str(tmp_path / "BTCUSDT-1m-*.zip")})

    assert req == ImportFiles((tmp_path / "BTCUSDT-1m-2024-01.zip", tmp_path / "BTCUSDT-1m-2024-02.zip"))


@pytest.mark.parametrize(
    ("params", "named"),
    [({"files": "/nowhere/*.zip"}, "files: '/nowhere/\\*.zip' matches no file"),
     ({"symbols": ["BTC-USDT"], "start": "2024-03-01", "end": "2024-03-02"}, "symbols"),
     ({"symbols": ["BTCUSDT"], "interval": "7m", "start": "2024-03-01", "end": "2024-03-02"}, "interval"),
     ({"symbols": ["BTCUSDT"]}, "start: a history load needs start and end"),
     ({"symbols": ["BTCUSDT"], "start": "2024-03-01", "end": "March"}, "end: 'March' is not an ISO 8601 time"),
     ({"symbols": ["BTCUSDT"], "start": "2024-03-02", "end": "2024-03-01"}, "must be before end"),
     ({"start": "2024-03-01"}, "start is set but symbols is empty"),
     ({"lookback_days": 0}, "lookback_days")],
)
def test_a_bad_trigger_form_fails_before_any_work_naming_the_param(params, named):
    with pytest.raises(ConfigError, match=named):
        backfill_request({**FORM, **params})
