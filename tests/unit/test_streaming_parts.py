import json
import math

import pytest

from klinepipe.kline import parse_kline_event
from streaming.config import load_settings, parse_speed, parse_time_ms
from streaming.envelope import read_kline_frame, unwrap
from streaming.errors import FrameError, SettingsError
from streaming.replay import Recorded, csv_row_to_event, frames_after, pace, series_from_name

import msgspec
from pathlib import Path

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


def test_combined_stream_frame_forwards_the_data_bytes_unchanged():
    data = (b'{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":0,"T":59999,"s":"BTCUSDT","i":"1m","x":true,"o":"1.10",'
            b'"c":"1.20","h":"1.30","l":"1.00","v":"5"}}')
    frame = b'{"stream":"btcusdt@kline_1m","data":' + data + b"}"

    assert unwrap(frame) == data
    assert unwrap(data) == data
    kf = read_kline_frame(unwrap(frame))
    assert kf.key == b"BTCUSDT:1m" and kf.value == data and kf.closed and kf.open_time == 0 and kf.interval == "1m"


@pytest.mark.parametrize("frame", [
    b"garbage", b'{"e":"trade","s":"BTCUSDT"}', b'{"e":"kline","s":"X"}',
    b'{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":0,"T":59999,"s":"BTCUSDT","i":"7m","x":true,'
    b'"o":"1","c":"1","h":"1","l":"1","v":"1"}}',  # unknown interval
    b'{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":0,"T":59999,"s":"ETHUSDT","i":"1m","x":true,'
    b'"o":"1","c":"1","h":"1","l":"1","v":"1"}}',  # two symbols
    b'{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":0,"T":59999,"s":"BTCUSDT","i":"1m","x":true,'
    b'"o":1,"c":"1","h":"1","l":"1","v":"1"}}',  # a price that is not a string
])
def test_non_kline_frames_are_errors(frame):
    with pytest.raises(FrameError):
        read_kline_frame(frame)


def test_pace_follows_the_recording_clock_scaled_by_speed():
    now = [0.0]
    slept = []

    def sleep(d):
        slept.append(round(d, 6))
        now[0] += d

    frames = [Recorded(at, b"x") for at in (0, 60_000, 120_000)]
    list(pace(frames, 60.0, clock=lambda: now[0], sleep=sleep))

    assert slept == [1.0, 1.0]
    assert list(pace(frames, math.inf, clock=lambda: 0.0, sleep=slept.append)) == frames


def test_speed_parsing():
    assert parse_speed("60x") == 60 and parse_speed("2.5") == 2.5 and math.isinf(parse_speed("max"))
    with pytest.raises(ValueError):
        parse_speed("fast")


@pytest.mark.parametrize(
    ("env", "named"),
    [({"STREAMING_INTERVALS": "1m,7m"}, "STREAMING_INTERVALS"), ({"STREAMING_SYMBOLS": "BTC-USDT"}, "STREAMING_SYMBOLS"),
     ({"STREAMING_REPLAY_SPEED": "fast"}, "STREAMING_REPLAY_SPEED"), ({"KAFKA_PARTITIONS": "0"}, "KAFKA_PARTITIONS"),
     ({"STREAMING_METRICS_HOST": "all"}, "STREAMING_METRICS_HOST"), ({"STREAMING_REPLAY_AFTER": "yesterday"}, "STREAMING_REPLAY_AFTER")],
)
def test_invalid_streaming_settings_name_the_setting(monkeypatch, env, named):
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_streaming_settings_from_env(monkeypatch):
    monkeypatch.setenv("STREAMING_SYMBOLS", "btcusdt, ethusdt")
    monkeypatch.setenv("STREAMING_INTERVALS", "1s,1M")
    monkeypatch.setenv("KAFKA_CONFIG", json.dumps({"security.protocol": "SSL"}))

    s, k = load_settings()

    assert s.symbols == ("BTCUSDT", "ETHUSDT") and s.intervals == ("1s", "1M")
    assert str(s.metrics_host) == "127.0.0.1"  # /metrics is private unless asked otherwise
    assert k.producer_config()["security.protocol"] == "SSL" and k.producer_config()["enable.idempotence"] is True


def test_replay_after_skips_what_happened_up_to_it_and_takes_ms_or_iso(monkeypatch):
    frames = [Recorded(t, b"f%d" % t) for t in (1_000, 2_000, 3_000)]
    monkeypatch.setenv("STREAMING_REPLAY_AFTER", "1970-01-01T00:00:02Z")

    after = load_settings()[0].replay_after

    assert after == 2_000 == parse_time_ms("2000") == parse_time_ms("1970-01-01T00:00:02")
    assert [f.at_ms for f in frames_after(frames, after)] == [3_000]
    assert list(frames_after(frames, None)) == frames and parse_time_ms(" ") is None
