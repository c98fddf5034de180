"""Recorded 12-column kline rows become closed kline events with Binance's exact strings; series from file names."""

from pathlib import Path

import msgspec
import pytest

from klinepipe.kline import parse_kline_event
from streaming.replay import csv_row_to_event, series_from_name


ROW = ["1633336200000", "49012.34", "49100.00", "48950.01", "49050.55", "123.456", "1633337999999",
       "6050000.1", "4321", "60.1", "2950000.2", "0"]


def test_csv_row_becomes_a_closed_kline_event_with_exact_strings():
    event = msgspec.json.encode(csv_row_to_event(ROW, "BTCUSDT", "30m"))

    k = parse_kline_event(event)

    assert k.is_closed and (k.open_time, k.close_time) == (1633336200000, 1633337999999)
    assert (k.open, k.high, k.low, k.close, k.volume) == ("49012.34", "49100.00", "48950.01", "49050.55", "123.456")
    assert (k.trades, k.quote_volume, k.taker_buy_base_volume) == (4321, "6050000.1", "60.1")


def test_microsecond_rows_and_missing_columns():
    row = ["1633336200000000", "1", "2", "0.5", "1.5", "10", "1633337999999999", "", "", "", "", ""]

    event = csv_row_to_event(row, "BTCUSDT", "30m")

    assert event["k"]["t"] == 1633336200000 and event["k"]["T"] == 1633337999999
    assert "q" not in event["k"] and "n" not in event["k"]  # absent, not invented
    assert parse_kline_event(msgspec.json.encode(event)).trades is None


def test_series_from_file_name():
    assert series_from_name(Path("BTCUSDT-1m.csv.gz")) == ("BTCUSDT", "1m")
    assert series_from_name(Path("ALGOUSDT-1m-2023-02.csv")) == ("ALGOUSDT", "1m")
    with pytest.raises(ValueError, match="file name"):
        series_from_name(Path("candles.csv"))
