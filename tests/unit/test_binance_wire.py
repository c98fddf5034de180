"""The one Binance wire package (``klinepipe.binance``): the sidecar and the loader accept the same events, one
finality rule, one row struct, one interval table with calendar months, one file-name pattern, one time rule."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Message
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from klinepipe.binance.events import DECODE_ERRORS, decode_kline_event
from klinepipe.binance.finality import is_closing_event, is_final_row
from klinepipe.binance.intervals import INTERVALS, close_time_of, next_open_time
from klinepipe.binance.rows import BinanceKlineRow, parse_kline_row, row_open_time, series_from_file_name
from klinepipe.binance.times import (MAX_TIME_MS, datetime_to_ms, epoch_ms, iso_seconds, ms_to_datetime, parse_time_ms,
                                     parse_utc)
from klinepipe.errors import KlineParseError
from klinepipe.ingest import parse_into
from klinepipe.kline import parse_kline_event, row_to_kline
from streaming.envelope import FrameError, read_frame, read_kline_frame
from tests.helpers import closed_events, sample_rows

CAPTURE = Path(__file__).resolve().parents[2] / "data" / "sample" / "BTCUSDT-kline_5m-ws-20210914.jsonl"
REAL_EVENTS = [line for line in CAPTURE.read_bytes().splitlines() if line.strip()][:8] + closed_events(sample_rows(8))
REST_ROW = ('[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,'
            '"2434.19055334",308,"1756.87402397","28.46694368","0"]')  # reference 3.3, the documented row
PROPERTY = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# --- the sidecar accepts exactly what the loader accepts ---------------------------------------------------------

_TRICKY = {  # values that break one invariant each, or that pass although they look odd
    "money": ["-1", "1e3", "abc", "", "1.5", "0", "9" * 31, "1.50", "\u0663", "NaN", 1.5, None, "46000.1", "99999.99"],
    "time": [0, -1, 1, 1631637000001, 1631637299998, 1631637299999, 1631637300000, MAX_TIME_MS, MAX_TIME_MS + 1,
             2**63, "1631637000000", 1.5, None],
    "i": ["1m", "5m", "1M", "1w", "7m", "", "5M", None, 5],
    "s": ["BTCUSDT", "ETHUSDT", "", "BTC USDT", "X" * 65, "btcusdt", None],
    "x": [True, False, "true", 1, None],
    "n": [0, -1, 2**63, 2**63 - 1, "7", None],
    "e": ["kline", "trade", "", None],
    "k": [None, {}, [], "k"],
}
_KIND = {"o": "money", "h": "money", "l": "money", "c": "money", "v": "money", "q": "money", "V": "money",
         "Q": "money", "t": "time", "T": "time", "E": "time", "i": "i", "s": "s", "x": "x", "n": "n", "e": "e",
         "f": "n", "L": "n", "B": "money", "k": "k"}
_DROP = object()


@st.composite
def mutated_events(draw) -> bytes:
    """A real event with one to three fields changed to a tricky value or removed, or its bytes cut or spliced."""
    event = draw(st.sampled_from(REAL_EVENTS))
    how = draw(st.sampled_from(["fields", "fields", "fields", "cut", "splice", "as is"]))
    if how == "as is":
        return event
    if how == "cut":
        return event[: draw(st.integers(0, len(event)))]
    if how == "splice":
        at = draw(st.integers(0, len(event)))
        return event[:at] + draw(st.sampled_from([b"\xff", b" ", b",", b'"', b"0", b"}", b'"x":true,'])) + event[at:]
    obj = json.loads(event)
    for _ in range(draw(st.integers(1, 3))):
        target = obj if draw(st.booleans()) or not isinstance(obj.get("k"), dict) else obj["k"]
        if not target:
            break
        name = draw(st.sampled_from(sorted(target)))
        value = draw(st.sampled_from([*_TRICKY[_KIND[name]], _DROP]))
        if value is _DROP:
            del target[name]
        else:
            target[name] = value
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _loader_keeps(value: bytes, key: bytes | None) -> bool:
    latest, dead = {}, []
    parse_into([Message(topic="t", partition=0, offset=1, key=key, value=value)], "t", latest, dead)
    assert len(latest) + len(dead) == 1
    return bool(latest)


@PROPERTY
@given(mutated_events())
@example(REAL_EVENTS[0].replace(b'"o":"46692.06000000"', b'"o":"46800.00000000"'))  # open above high: passed the sidecar
@example(REAL_EVENTS[0].replace(b'"T":1631637299999', b'"T":1631637300001'))  # close time of no 5m candle: passed it too
def test_the_sidecar_accepts_exactly_what_the_loader_accepts(event):
    try:
        frame = read_kline_frame(event)
    except FrameError:
        assert not _loader_keeps(event, None)  # rejected by the sidecar: the loader would dead-letter it too
        return
    assert _loader_keeps(frame.value, frame.key)  # published by the sidecar, under its key: the loader keeps it
    kline = parse_kline_event(event)
    assert (frame.key, frame.interval, frame.open_time, frame.closed) == (kline.key.encode(), kline.interval,
                                                                         kline.open_time, kline.is_closed)


@PROPERTY
@given(mutated_events())
def test_a_combined_stream_frame_is_judged_by_its_data_alone(event):
    combined = b'{"stream":"btcusdt@kline_5m","data":' + event + b"}"
    try:
        json.loads(event)
    except ValueError:
        return  # not JSON: the combined frame around it is not JSON either

    try:
        read_frame(combined)
        accepted = True
    except FrameError:
        accepted = False

    assert accepted == _loader_keeps(event, None)


# --- finality: one rule ------------------------------------------------------------------------------------------

@PROPERTY
@given(mutated_events())
def test_the_triggers_question_is_the_rule_and_its_byte_filter_only_a_prefilter(event):
    try:
        wire = decode_kline_event(event)
        flag = wire.e == "kline" and wire.k.x
    except DECODE_ERRORS:
        flag = False
    try:
        stored = parse_kline_event(event).is_closed
    except KlineParseError:
        stored = None

    assert is_closing_event(event) is flag
    assert stored is None or stored is flag  # an event the loader keeps: closed in the store iff the trigger says so


@pytest.mark.parametrize("event", REAL_EVENTS)
def test_closing_events_are_the_closed_candles_the_loader_stores(event):
    kline = parse_kline_event(event)

    assert is_closing_event(event) is kline.is_closed
    assert (b'"x":true' in event) is kline.is_closed  # the byte search the trigger used agrees on Binance's compact JSON


def test_a_closing_event_written_with_spaces_is_still_one():
    spaced = json.dumps(json.loads(REAL_EVENTS[-1])).encode()  # '"x": true'

    assert b'"x":true' not in spaced and is_closing_event(spaced)
    assert not is_closing_event(None) and not is_closing_event(b"") and not is_closing_event(b'{"k":{"x":"true"}}')


def test_a_rest_row_is_final_once_its_close_time_has_passed():
    assert is_final_row(59_999, 60_000) and not is_final_row(59_999, 59_999)


# --- the 12-column row ---------------------------------------------------------------------------------------------

def test_a_rest_page_decodes_straight_into_array_like_rows():
    decoded = msgspec.json.decode(f"[{REST_ROW}]", type=list[BinanceKlineRow])[0]

    parsed = parse_kline_row(json.loads(REST_ROW))

    assert msgspec.structs.replace(decoded, ignore=None) == parsed
    assert (parsed.open_time, parsed.close_time, parsed.trades, parsed.quote_volume) == (1499040000000, 1499644799999,
                                                                                         308, "2434.19055334")
    assert row_open_time(json.loads(REST_ROW)) == 1499040000000 and row_open_time("x") is None


def test_a_file_row_in_microseconds_is_the_same_row():
    rest = json.loads(REST_ROW)
    file_row = [str(v) for v in rest]
    file_row[0], file_row[6] = str(rest[0] * 1000 + 999), str(rest[6] * 1000 + 999)

    assert parse_kline_row(file_row) == parse_kline_row(rest)


def test_a_row_without_its_optional_columns_leaves_them_unset():
    row = parse_kline_row(["0", "1", "2", "0.5", "1.5", "10", "59999", "", " ", ""])

    assert (row.quote_volume, row.trades, row.taker_buy_base_volume, row.taker_buy_quote_volume) == (None, None, None, None)


@pytest.mark.parametrize(("row", "reason"), [
    ([0, "1", "1", "1", "1", "1"], "at least 7 columns"),
    ([0, 1.5, "1", "1", "1", "1", 59_999], "open is not a string"),
    (["x", "1", "1", "1", "1", "1", 59_999], "open time is not a whole number"),
    ([0, "1", "1", "1", "1", "1", 59_999, "1", "-3"], "trades is not a whole number"),
    ([0, "1", "1", "1", "1", "1", MAX_TIME_MS + 1], "past the year 9999"),
])
def test_a_row_that_is_not_one_says_why(row, reason):
    with pytest.raises(KlineParseError, match=reason):
        parse_kline_row(row)


# --- intervals: one table, calendar months -------------------------------------------------------------------------

def test_the_interval_table_is_binances():
    assert INTERVALS == ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")


@pytest.mark.parametrize(("month", "following"), [((2024, 1), (2024, 2)), ((2024, 2), (2024, 3)), ((2023, 2), (2023, 3)),
                                                   ((2023, 12), (2024, 1)), ((2024, 4), (2024, 5))])
def test_a_month_candle_ends_where_the_next_calendar_month_begins(month, following):
    t = datetime_to_ms(datetime(*month, 1, tzinfo=timezone.utc))

    assert next_open_time(t, "1M") == datetime_to_ms(datetime(*following, 1, tzinfo=timezone.utc))
    assert close_time_of(t, "1M") == next_open_time(t, "1M") - 1


def test_the_last_month_a_timestamp_holds_still_has_a_close_time():
    assert close_time_of(datetime_to_ms(datetime(9999, 12, 1, tzinfo=timezone.utc)), "1M") == MAX_TIME_MS


def _month_row(close_time: int) -> list:
    return [1_706_745_600_000, "1", "2", "0.5", "1.5", "10", close_time]  # opens 2024-02-01


def test_a_month_candle_is_checked_against_the_calendar():
    assert row_to_kline(_month_row(1_709_251_199_999), "BTCUSDT", "1M", 1).close_time == 1_709_251_199_999  # 29 days
    with pytest.raises(KlineParseError, match="does not match"):
        row_to_kline(_month_row(1_706_745_600_000 + 31 * 86_400_000 - 1), "BTCUSDT", "1M", 1)  # 31 days: no February


# --- file names ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "series"), [
    ("BTCUSDT-1h-2023-10-27.zip", ("BTCUSDT", "1h")),  # a daily data.binance.vision file
    ("BNBUSDT-1mo-2019-01.zip", ("BNBUSDT", "1M")),  # monthly candles are "1mo" in its names
    ("BNBUSDT-1M.csv", ("BNBUSDT", "1M")),
    ("BTCUSDT-1m.csv.gz", ("BTCUSDT", "1m")),
    ("ALGOUSDT-1m-2023-02.csv", ("ALGOUSDT", "1m")),
    ("BTCUSDT-15m.jsonl", ("BTCUSDT", "15m")),
])
def test_file_names_tell_the_series(name, series):
    assert series_from_file_name(name) == series


@pytest.mark.parametrize("name", ["candles.csv", "btcusdt-1m.csv", "BTCUSDT-kline_5m-ws-20210914.jsonl", "BTCUSDT-1mx.csv"])
def test_a_file_name_that_does_not_say_is_an_error(name):
    with pytest.raises(ValueError, match="file name"):
        series_from_file_name(name)


# --- time ----------------------------------------------------------------------------------------------------------

def test_epoch_values_in_ms_or_us_are_ms():
    assert epoch_ms(1_704_067_200_000) == 1_704_067_200_000 and epoch_ms(1_704_067_200_000_123) == 1_704_067_200_000


@given(st.integers(0, MAX_TIME_MS))
def test_ms_and_datetimes_convert_exactly_both_ways(ms):
    assert datetime_to_ms(ms_to_datetime(ms)) == ms


def test_iso_times_are_utc_unless_they_say():
    assert parse_utc("2024-03-01") == datetime(2024, 3, 1, tzinfo=timezone.utc)
    assert datetime_to_ms(parse_utc("2024-03-01T01:00:00+01:00")) == datetime_to_ms(datetime(2024, 3, 1)) == 1_709_251_200_000
    assert parse_time_ms("2024-03-01T00:01:00Z") == parse_time_ms(" 1709251260000 ") == 1_709_251_260_000
    assert parse_time_ms("") is None and iso_seconds(1_709_251_260_000) == "2024-03-01T00:01:00Z"
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time_ms("yesterday")
