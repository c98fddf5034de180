from datetime import datetime, timezone

import pytest

from klinepipe.backfill_request import FillGaps, ImportFiles, LoadHistory, backfill_request, import_request
from klinepipe.errors import KlinepipeConfigError

UTC = timezone.utc
FORM = {"symbols": None, "interval": "1m", "start": None, "end": None, "lookback_days": 7}  # the form's defaults


def test_the_two_requests():
    assert backfill_request(FORM) == FillGaps(7)
    assert backfill_request({**FORM, "symbols": [""], "lookback_days": None}) == FillGaps(7)  # an emptied textarea
    assert backfill_request({**FORM, "symbols": ["btcusdt ", "ETHUSDT"], "interval": "1h",
                             "start": "2024-03-01T00:00:00Z", "end": "2024-03-02T00:00:00"}) == LoadHistory(
        ("BTCUSDT", "ETHUSDT"), "1h", datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))


def test_a_files_glob_lists_the_matching_files_in_order(tmp_path):
    for name in ("BTCUSDT-1m-2024-02.zip", "BTCUSDT-1m-2024-01.zip"):
        (tmp_path / name).write_bytes(b"")

    req = import_request({"files": str(tmp_path / "BTCUSDT-1m-*.zip")})

    assert req == ImportFiles((tmp_path / "BTCUSDT-1m-2024-01.zip", tmp_path / "BTCUSDT-1m-2024-02.zip"))


@pytest.mark.parametrize(
    ("params", "named"),
    [({"files": "/nowhere/*.zip"}, "files: file imports are the import_kline_files DAG's job"),
     ({"symbols": ["BTC-USDT"], "start": "2024-03-01", "end": "2024-03-02"}, "symbols"),
     ({"symbols": ["BTCUSDT"], "interval": "7m", "start": "2024-03-01", "end": "2024-03-02"}, "interval"),
     ({"symbols": ["BTCUSDT"]}, "start: a history load needs start and end"),
     ({"symbols": ["BTCUSDT"], "start": "2024-03-01", "end": "March"}, "end: 'March' is not an ISO 8601 time"),
     ({"symbols": ["BTCUSDT"], "start": "2024-03-02", "end": "2024-03-01"}, "must be before end"),
     ({"start": "2024-03-01"}, "start is set but symbols is empty"),
     ({"lookback_days": 0}, "lookback_days")],
)
def test_a_bad_trigger_form_fails_before_any_work_naming_the_param(params, named):
    with pytest.raises(KlinepipeConfigError, match=named):
        backfill_request({**FORM, **params})


def test_symbols_given_as_text_are_split_and_upper_cased():
    req = backfill_request({**FORM, "symbols": "btcusdt, ETHUSDT", "start": "2024-03-01", "end": "2024-03-02"})

    assert req.symbols == ("BTCUSDT", "ETHUSDT")


@pytest.mark.parametrize(("files", "named"), [("", "files: name the data.binance.vision"),
                                              ("/nowhere/*.zip", "files: '/nowhere/\\*.zip' matches no file")])
def test_an_import_without_matching_files_fails_naming_the_param(files, named):
    with pytest.raises(KlinepipeConfigError, match=named):
        import_request({"files": files})
