"""Websocket frames: kline events read (combined-stream form unwrapped, bytes forwarded), control frames told apart,
anything else an error."""

from pathlib import Path

import pytest

from streaming.envelope import Control, FrameError, control_kind, read_frame, read_kline_frame, unwrap


CAPTURE = Path(__file__).resolve().parents[2] / "data" / "sample" / "BTCUSDT-kline_5m-ws-20210914.jsonl"


def test_the_real_websocket_capture_parses_with_no_error():
    frames = [line.strip() for line in CAPTURE.read_bytes().splitlines() if line.strip()]

    parsed = [read_frame(f) for f in frames]

    assert len(parsed) == 49 and {p.key for p in parsed} == {b"BTCUSDT:5m"} and not any(p.closed for p in parsed)
    assert all(p.value == f for p, f in zip(parsed, frames))  # forwarded byte for byte


@pytest.mark.parametrize(("frame", "kind"), [
    (b'{"e":"serverShutdown","E":1770123456789}', Control.SHUTDOWN),
    (b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}', Control.SHUTDOWN),
    (b'{"result":null,"id":1}', Control.REPLY),
    (b'{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}', Control.ERROR),
])
def test_control_frames_are_recognised(frame, kind):
    assert control_kind(frame)[0] is kind


@pytest.mark.parametrize("frame", [b"garbage", b"[1,2]", b'{"e":"trade"}', b'{"result":null}'])
def test_other_frames_are_not_control_frames(frame):
    assert control_kind(frame) is None


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
