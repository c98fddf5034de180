"""Backtest candle loading: Binance kline files in every shipped shape (pure, local files only)."""

import gzip
import zipfile
from datetime import datetime, timezone

import numpy as np
import pytest

from tests.helpers import SAMPLE, sample_rows, write_csv
from trader.backtest.candles import infer_interval_ms, read_kline_file, series_from_name, slice_candles

HEADER = ["open_time", "open", "high", "low", "close", "volume", "close_time", "quote_asset_volume",
          "number_of_trades", "taker_buy_base_volume", "taker_buy_quote_volume", "ignore"]


def test_the_bundled_files_load_with_their_exact_values():
    candles = read_kline_file(SAMPLE / "BTCUSDT-1m.csv.gz")
    rows = sample_rows(2)

    assert len(candles) == 30_899 and list(candles.columns) == ["open_time", "open", "high", "low", "close", "volume"]
    assert candles["open_time"].iloc[0] == int(rows[0][0]) and candles["close"].iloc[1] == float(rows[1][4])
    assert infer_interval_ms(candles) == 60_000
    assert infer_interval_ms(read_kline_file(SAMPLE / "BTCUSDT-1d.csv")) == 86_400_000


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("kind", ["csv", "gz", "zip"])
def test_header_optional_and_csv_gz_zip_read_alike(tmp_path, header, kind):
    rows = sample_rows(50, "BTCUSDT-30m.csv")
    plain = write_csv(tmp_path / "BTCUSDT-30m.csv", ([HEADER] if header else []) + rows)
    path = plain
    if kind == "gz":
        path = tmp_path / "BTCUSDT-30m.csv.gz"
        path.write_bytes(gzip.compress(plain.read_bytes()))
    elif kind == "zip":
        path = tmp_path / "BTCUSDT-30m-2021-10.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.write(plain, "BTCUSDT-30m-2021-10.csv")

    candles = read_kline_file(path)

    assert len(candles) == 50
    assert candles["open_time"].tolist() == [int(r[0]) for r in rows]
    assert candles["volume"].tolist() == [float(r[5]) for r in rows]


def test_microsecond_times_become_milliseconds(tmp_path):
    rows = sample_rows(10, "BTCUSDT-30m.csv")
    micro = [[str(int(r[0]) * 1000), *r[1:6], str(int(r[6]) * 1000), *r[7:]] for r in rows]

    candles = read_kline_file(write_csv(tmp_path / "BTCUSDT-30m.csv", micro))

    assert candles["open_time"].tolist() == [int(r[0]) for r in rows]


def test_unsorted_or_duplicate_rows_are_refused(tmp_path):
    rows = sample_rows(5, "BTCUSDT-30m.csv")

    with pytest.raises(ValueError, match="strictly increasing"):
        read_kline_file(write_csv(tmp_path / "BTCUSDT-30m.csv", rows + rows[-1:]))


def test_slice_keeps_start_inclusive_end_exclusive():
    candles = read_kline_file(SAMPLE / "BTCUSDT-1h.csv")
    start, end = datetime(2023, 7, 1, tzinfo=timezone.utc), datetime(2023, 7, 2, tzinfo=timezone.utc)

    day = slice_candles(candles, start, end)

    assert len(day) == 24 and day["open_time"].iloc[0] == int(start.timestamp() * 1000)
    assert np.all(day["open_time"].to_numpy() < int(end.timestamp() * 1000))


def test_series_comes_from_the_binance_file_name():
    assert series_from_name("data/BTCUSDT-1m.csv.gz") == ("BTCUSDT", "1m")
    assert series_from_name("ALGOUSDT-1m-2023-02.zip") == ("ALGOUSDT", "1m")
    assert series_from_name("history.csv") == ("", "")
