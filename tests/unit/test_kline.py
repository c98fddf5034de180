from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from klinepipe.errors import KlineParseError
from klinepipe.kline import beats, in_conflict, newest, parse_kline_event

CAPTURE = Path(__file__).resolve().parents[2] / "data" / "sample" / "BTCUSDT-kline_5m-ws-20210914.jsonl"
DOC_EXAMPLE = (
    b'{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,"T":1672515839999,"s":"BNBBTC","i":"1m",'
    b'"f":100,"L":200,"o":"0.0010","c":"0.0020","h":"0.0025","l":"0.0010","v":"1000","n":100,"x":false,'
    b'"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}'
)


def test_real_websocket_capture_parses_completely():
    lines = [line for line in CAPTURE.read_bytes().splitlines() if line.strip()]

    klines = [parse_kline_event(line) for line in lines]

    assert len(klines) == 49
    first = klines[0]
    assert (first.symbol, first.interval, first.open_time, first.close_time) == ("BTCUSDT", "5m", 1631637000000, 1631637299999)
    assert first.open == "46692.06000000" and first.close == "46672.98000000"  # exact strings, no float
    assert first.trades == 2196 and first.is_closed is False and first.event_time == 1631637132163
    assert all(k.open_time == 1631637000000 and not k.is_closed for k in klines)


def test_documented_example_parses():
    k = parse_kline_event(DOC_EXAMPLE)

    assert k.key == "BNBBTC:1m"
    assert k.quote_volume == "1.0000" and k.taker_buy_base_volume == "500" and k.taker_buy_quote_volume == "0.500"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not a kline event"),
        (b'{"e":"trade","E":1,"s":"BTCUSDT","k":' + DOC_EXAMPLE.split(b'"k":', 1)[1][:-1] + b"}", "event type"),
        (DOC_EXAMPLE.replace(b'"o":"0.0010"', b'"o":0.0010'), "not a kline event"),
        (DOC_EXAMPLE.replace(b'"c":"0.0020"', b'"c":"abc"'), "not a plain decimal"),
        (DOC_EXAMPLE.replace(b'"c":"0.0020"', b'"c":"NaN"'), "not a plain decimal"),
        (DOC_EXAMPLE.replace(b'"h":"0.0025"', b'"h":"0.0015"'), "OHLC out of order"),
        (DOC_EXAMPLE.replace(b'"v":"1000"', b'"v":"-1000"'), "not a plain decimal"),
        (DOC_EXAMPLE.replace(b'"v":"1000"', b'"v":"1e3"'), "not a plain decimal"),
        (DOC_EXAMPLE.replace(b'"v":"1000"', b'"v":"' + b"1" * 31 + b'"'), "not a plain decimal"),
        (DOC_EXAMPLE.replace(b'"v":"1000"', b'"v":"1000."'), "not a plain decimal"),
        (DOC_EXAMPLE.replace(b'"v":"1000"', b'"v":".5"'), "not a plain decimal"),
        (DOC_EXAMPLE.replace(b'"v":"1000"', b'"v":"1.2.3"'), "not a plain decimal"),
        (DOC_EXAMPLE.replace(b'"v":"1000"', '"v":"1\u0663"'.encode()), "not a plain decimal"),
        (DOC_EXAMPLE.replace(b'"i":"1m"', b'"i":"7m"'), "unknown interval"),
        (DOC_EXAMPLE.replace(b'"T":1672515839999', b'"T":1672515839000'), "close time"),
        (DOC_EXAMPLE.replace(b'"s":"BNBBTC","k"', b'"s":"ETHBTC","k"'), "symbol mismatch"),
        (DOC_EXAMPLE.replace(b',"x":false', b""), "not a kline event"),
    ],
)
def test_malformed_events_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(KlineParseError, match=reason):
        parse_kline_event(raw)


def test_the_longest_plain_decimals_are_accepted():
    longest = "9" * 30 + "." + "9" * 30

    assert parse_kline_event(DOC_EXAMPLE.replace(b'"v":"1000"', f'"v":"{longest}"'.encode())).volume == longest


def test_newest_prefers_closed_then_later_event():
    early = parse_kline_event(DOC_EXAMPLE)
    later = parse_kline_event(DOC_EXAMPLE.replace(b'"E":1672515782136', b'"E":1672515784136'))
    closed_old = parse_kline_event(DOC_EXAMPLE.replace(b'"x":false', b'"x":true').replace(b'"E":1672515782136', b'"E":1672515781000'))

    assert newest(early, later) is later
    assert newest(later, early) is later
    assert newest(later, closed_old) is closed_old
    assert newest(closed_old, later) is closed_old


_CLOSED = DOC_EXAMPLE.replace(b'"x":false', b'"x":true')
_states = st.builds(
    lambda closed, e, c, v, n: parse_kline_event(
        (_CLOSED if closed else DOC_EXAMPLE).replace(b'"E":1672515782136', b'"E":%d' % e).replace(b'"c":"0.0020"', b'"c":"%s"' % c)
        .replace(b'"v":"1000"', b'"v":"%s"' % v).replace(b'"n":100', b'"n":%d' % n)),
    st.booleans(), st.sampled_from([1, 2]), st.sampled_from([b"0.0020", b"0.002", b"0.0025", b"00.0020"]),
    st.sampled_from([b"1000", b"1000.0", b"999"]), st.sampled_from([100, 101]))


@settings(max_examples=300, deadline=None, database=None)
@given(_states, _states, _states)
def test_the_conflict_rule_is_a_total_order_so_the_winner_does_not_depend_on_the_order(a, b, c):
    assert (beats(a, b) is None) == (beats(b, a) is None)
    if beats(a, b) is not None:
        assert beats(a, b) is not beats(b, a)
    if beats(a, b) and beats(b, c):
        assert beats(a, c)  # transitive
    winner = newest(newest(a, b), c)
    assert all(beats(x, winner) is not True for x in (a, b, c))  # nothing beats the winner, whatever came first


def test_equal_event_times_the_greater_content_wins_and_same_values_are_no_conflict():
    low, high = parse_kline_event(_CLOSED), parse_kline_event(_CLOSED.replace(b'"c":"0.0020"', b'"c":"0.0025"'))
    rescaled = parse_kline_event(_CLOSED.replace(b'"c":"0.0020"', b'"c":"0.00200"'))

    assert newest(low, high) is high and newest(high, low) is high
    assert in_conflict(low, high) and not in_conflict(low, rescaled)
    assert newest(low, rescaled) is rescaled and newest(rescaled, low) is rescaled  # one more digit of scale: greater
