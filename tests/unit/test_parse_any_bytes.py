"""No input can stop a batch: every parse entry point turns any bytes into a record or its parse error.

Property tests (hypothesis) over arbitrary bytes and over real events mutated the ways that broke things:
invalid UTF-8 inside a JSON string, deep nesting, huge numbers, NaN and infinity, wrong types, truncation.
An entry point may only return its record or raise its module's parse error (which the caller dead-letters);
anything else (``UnicodeDecodeError``, ``RecursionError``, ``OverflowError``, ``TypeError``...) would fail,
and roll back, the whole batch, on every run.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import zipfile
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Message
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from klinepipe.backfill import fetch_klines
from klinepipe.binance_files import read_klines_from_file
from klinepipe.errors import KlineParseError
from klinepipe.ingest import parse_into
from klinepipe.kline import Kline, parse_kline_event, row_to_kline
from streaming.envelope import KlineFrame, control_kind, read_frame
from streaming.errors import FrameError, RowError
from streaming.kafka_sink import KafkaSink
from streaming.frame_pipeline import FramePipeline
from streaming.replay import Recorded, csv_row_to_event, read_recorded, row_to_frame
from tests.helpers import closed_events, sample_rows

CAPTURE = Path(__file__).resolve().parents[2] / "data" / "sample" / "BTCUSDT-kline_5m-ws-20210914.jsonl"
REAL_EVENTS = [line for line in CAPTURE.read_bytes().splitlines() if line.strip()][:10] + closed_events(sample_rows(10))
REAL_ROWS = sample_rows(12)
OTHER_CANDLES = closed_events(REAL_ROWS[10:])  # two candles no mutated event is of
REAL_ROWS = REAL_ROWS[:10]
POISON = b'{"e":"kline","E":1,"s":"\xff\xfe"}'  # the message that stopped every ingest batch (issue 12)

FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# --- what bad input looks like ---------------------------------------------------------------------------

_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63 - 5, max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["46692.06000000", "1e3", "NaN", "-1", "\u0663", "", " 7 ", "9" * 40, "BTCUSDT", "1m"]),
)
json_values = st.recursive(_json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                           max_leaves=12)
_raw_bits = st.sampled_from([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b'"\\ud800"', b"NaN", b"Infinity", b"1e999", b"-0",
                             b"9" * 400, b"[" * 5000, b"{" * 3000, b"\x00", b'"', b"}", b",", b":", b"\\"])


@st.composite
def mutated_events(draw) -> bytes:
    """A real event with bytes changed: invalid UTF-8, a raw token spliced in, a cut, a field replaced."""
    event = draw(st.sampled_from(REAL_EVENTS))
    how = draw(st.sampled_from(["splice", "cut", "field", "string"]))
    if how == "splice":
        at = draw(st.integers(0, len(event)))
        return event[:at] + draw(_raw_bits | st.binary(max_size=8)) + event[at + draw(st.integers(0, 4)):]
    if how == "cut":
        return event[: draw(st.integers(0, len(event)))]
    obj = msgspec.json.decode(event)
    target = obj if draw(st.booleans()) else obj["k"]
    name = draw(st.sampled_from(sorted(target)))
    if how == "field":  # any JSON value, huge numbers and deep nesting included
        target[name] = "\x00PLACEHOLDER\x00"
        token = draw(st.one_of(st.just(None), _raw_bits)) or msgspec.json.encode(draw(json_values))
        return msgspec.json.encode(obj).replace(b'"\\u0000PLACEHOLDER\\u0000"', token)
    target[name] = "\x00PLACEHOLDER\x00"  # invalid UTF-8 inside a JSON string (the bug of issue 12)
    return msgspec.json.encode(obj).replace(b"\\u0000PLACEHOLDER\\u0000", draw(st.sampled_from([b"\xff\xfe", b"\xc3", b"A\xed\xa0\x80"])))


any_bytes = st.binary(max_size=300) | mutated_events()


# --- Kafka values, keys and headers (the ingest) -----------------------------------------------------------

@FAST
@given(any_bytes)
@example(POISON)
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"e":"kline","E":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
def test_parse_kline_event_gives_a_kline_or_a_parse_error(raw):
    try:
        assert isinstance(parse_kline_event(raw), Kline)
    except KlineParseError as exc:
        assert str(exc)


@FAST
@given(value=st.none() | any_bytes, key=st.none() | st.binary(max_size=20) | st.just(b"BTCUSDT:1m"),
       headers=st.none() | st.lists(st.tuples(st.sampled_from(["source", "received_at", "x"]), st.none() | st.binary(max_size=20)), max_size=3))
@example(value=POISON, key=b"\xff\xfe", headers=[("source", b"\xff\x00")])
def test_ingest_parse_keeps_or_dead_letters_every_message(value, key, headers):
    messages = [Message(topic="t", partition=0, offset=1, key=key, value=value, headers=headers)]
    messages += [Message(topic="t", partition=0, offset=2 + i, key=None, value=v, headers=headers) for i, v in enumerate(OTHER_CANDLES)]
    latest, dead, conflicts = {}, [], []

    parse_into(messages, "t", latest, dead, {}, conflicts)

    kept = sum(1 for _, m in latest.values() if m.offset() == 1)
    assert kept + sum(1 for d in dead if d.offset == 1) == 1
    assert {m.offset() for _, m in latest.values()} >= {2, 3}
    assert all(d.error and isinstance(d.error, str) for d in dead)


# --- websocket frames (the sidecar) ------------------------------------------------------------------------

@FAST
@given(any_bytes | any_bytes.map(lambda b: b'{"stream":"btcusdt@kline_5m","data":' + b + b"}"))
@example(POISON)
@example(b'{"stream":"x","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
def test_a_frame_is_a_kline_a_control_frame_or_a_frame_error(frame):
    try:
        assert isinstance(read_frame(frame), KlineFrame)
    except FrameError:
        control = control_kind(frame)
        if control is not None:  # the connection looks its request up by id: it must be hashable
            hash(control[1].get("id"))


@pytest.mark.parametrize("frame", [b'{"result":null,"id":[1]}', b'{"error":{"code":2},"id":{"a":1}}', b'{"result":null,"id":1.5}'])
def test_a_reply_whose_id_is_not_an_integer_is_no_control_frame(frame):
    assert control_kind(frame) is None


class _Producer:
    def __init__(self) -> None:
        self.sent = []

    def produce(self, topic, value=None, key=None, headers=None, timestamp=0, on_delivery=None):
        self.sent.append((topic, key, value, dict(headers)))

    def poll(self, _timeout=0):
        return 0

    def __len__(self):
        return 0


@FAST
@given(st.lists(any_bytes, min_size=1, max_size=5))
@example([POISON])
def test_the_frame_pipeline_publishes_or_dead_letters_every_frame(frames):
    producer = _Producer()
    pipeline = FramePipeline(KafkaSink(producer, "k", "k.dlq"), "binance")

    controls = [pipeline.handle(f, 1) for f in frames]

    assert len(producer.sent) + sum(c is not None for c in controls) == len(frames)
    assert all(h["error"] for t, _, _, h in producer.sent if t == "k.dlq")


# --- replay files (CSV and JSONL) --------------------------------------------------------------------------

def _lines(draw_lines: list[bytes]) -> bytes:
    return b"\n".join(draw_lines) + b"\n"


real_csv_lines = st.sampled_from([",".join(r).encode() for r in REAL_ROWS])
csv_lines = real_csv_lines | st.binary(max_size=120).filter(lambda b: b"\n" not in b and b"\r" not in b) | real_csv_lines.map(
    lambda line: line.replace(b",", b",\xff", 1)) | real_csv_lines.map(lambda line: line.replace(b"1", b"\xd9\xa3", 1))


@FAST
@given(st.lists(csv_lines | any_bytes.filter(lambda b: b"\n" not in b and b"\r" not in b), min_size=1, max_size=6),
       st.sampled_from(["BTCUSDT-1m.jsonl", "BTCUSDT-1m.csv", "BTCUSDT-1m.csv.gz", "BTCUSDT-1m.jsonl.gz", "damaged BTCUSDT-1m.csv.gz"]))
@example([b"", POISON, b"\xff\xfe,1,2"], "BTCUSDT-1m.jsonl")
@example([b"\xb2,1,1,1,1,1,1", b'"' + b"x" * 200_000], "BTCUSDT-1m.csv")
def test_a_replay_file_of_any_bytes_gives_frames_or_dead_letters_line_by_line(tmp_path_factory, lines, name):
    path = tmp_path_factory.mktemp("replay") / name.split()[-1]
    data = _lines(lines)
    path.write_bytes((gzip.compress(data)[:-6] if name.startswith("damaged") else gzip.compress(data)) if name.endswith(".gz") else data)

    records = list(read_recorded(path))

    assert all(isinstance(r, Recorded) and isinstance(r.frame, bytes) for r in records)
    assert all(r.error is None or (r.error and r.at_ms is None) for r in records)
    assert len(records) <= len([line for line in data.split(b"\n") if line.strip()]) + name.startswith("damaged")


@FAST
@given(st.lists(json_values, max_size=14) | json_values)
@example(["1633336200000", "1", "2", "0.5", "1.5", "10", "1" * 400])
@example([2**70, "1", "1", "1", "1", "1", 2**70 + 59_999])
@example([0, "\ud800", "1", "1", "1", "1", 59_999])
def test_a_kline_row_of_any_json_gives_an_event_or_a_row_error(row):
    try:
        open_time, frame = row_to_frame(row, "BTCUSDT", "1m")
    except RowError as exc:
        assert str(exc)
        return
    assert isinstance(read_frame(frame), KlineFrame) and read_frame(frame).open_time == open_time


def test_real_csv_rows_still_become_events():
    event = csv_row_to_event(REAL_ROWS[0], "BTCUSDT", "1m")

    assert parse_kline_event(msgspec.json.encode(event)).open_time == int(REAL_ROWS[0][0])


# --- data.binance.vision files and REST rows (klinepipe) ---------------------------------------------------

def _as_zip(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("BTCUSDT-1m-2024-01-01.csv", data)
    return out.getvalue()


@FAST
@given(st.lists(csv_lines, min_size=1, max_size=6), st.sampled_from(["csv", "csv.gz", "zip", "damaged zip", "damaged gz"]))
@example([b"\xff\xfe,1,2"], "csv")
@example([b"1,2,3"], "damaged zip")
def test_a_kline_file_of_any_bytes_gives_candles_or_a_parse_error_naming_it(tmp_path_factory, lines, kind):
    data = _lines(lines)
    content = {"csv": data, "csv.gz": gzip.compress(data), "zip": _as_zip(data), "damaged zip": _as_zip(data)[:-30],
               "damaged gz": gzip.compress(data)[:-5]}[kind]
    suffix = {"csv": "csv", "csv.gz": "csv.gz", "zip": "zip", "damaged zip": "zip", "damaged gz": "csv.gz"}[kind]
    path = tmp_path_factory.mktemp("files") / f"BTCUSDT-1m-2024-01-01.{suffix}"
    path.write_bytes(content)

    try:
        assert all(isinstance(k, Kline) for k in read_klines_from_file(path, 1))
    except KlineParseError as exc:
        assert path.name in str(exc)


@FAST
@given(st.lists(json_values, max_size=14) | json_values)
@example([0, "1", "1", "1", "1", "1", 59_999, "1", 1.5, "1", "1"])
@example([float("inf"), "1", "1", "1", "1", "1", 59_999])
def test_a_rest_row_of_any_json_gives_a_candle_or_a_parse_error(row):
    try:
        assert isinstance(row_to_kline(row, "BTCUSDT", "1m", 1), Kline)
    except KlineParseError as exc:
        assert str(exc)


class _Client:
    """python-binance's ``get_klines`` answering one page of whatever JSON is given."""

    def __init__(self, page) -> None:
        self.page, self.calls = page, 0

    def get_klines(self, **_params):
        self.calls += 1
        return self.page if self.calls == 1 else []


@FAST
@given(st.lists(st.lists(json_values, max_size=12) | json_values, max_size=4) | json_values)
@example([[0, "1", "1", "1", "1", "1", "59999"]])
@example({"code": -1121, "msg": "Invalid symbol."})
def test_fetched_rest_pages_of_any_json_give_candles_or_a_parse_error(page):
    try:
        assert all(isinstance(k, Kline) for k in fetch_klines(_Client(page), "BTCUSDT", "1m", 0, 10**12, now_ms=lambda: 2 * 10**12,
                                                             sleep=lambda _s: None))
    except KlineParseError as exc:
        assert str(exc)


@FAST
@given(st.lists(st.lists(json_values, max_size=12) | json_values, max_size=4))
@example([[0, "\ud800", "1", "1", "1", "1", 59_999], "not a row", [1]])
def test_the_sidecar_backfill_publishes_or_dead_letters_every_rest_row(rows):
    from streaming.backfill import Backfiller
    from streaming.closed_candle_ledger import ClosedCandleLedger

    producer = _Producer()
    sink = KafkaSink(producer, "k", "k.dlq")
    ledger = ClosedCandleLedger()
    ledger.observe(b"BTCUSDT:1m", "1m", 0, False)  # the series the gap was found in
    backfiller = Backfiller(None, ledger, sink, FramePipeline(sink, "backfill"))

    asyncio.run(backfiller._publish(b"BTCUSDT:1m", "BTCUSDT", "1m", rows))

    assert len(producer.sent) <= len(rows)
    for topic, _, value, headers in producer.sent:
        if topic == "k.dlq":
            json.loads(value)  # the row as received, readable
            assert headers["error"].startswith(b"REST kline row of BTCUSDT 1m")


@pytest.mark.parametrize("line", [POISON, b'{"e":"kline","E":1e999}', b'{"E":' + b"[" * 50_000 + b"]" * 50_000 + b"}"])
def test_a_jsonl_line_that_crashed_the_replay_is_a_frame_error_now(tmp_path, line):
    path = tmp_path / "BTCUSDT-1m.jsonl"
    path.write_bytes(REAL_EVENTS[0] + b"\n" + line + b"\n" + REAL_EVENTS[1] + b"\n")
    producer = _Producer()
    pipeline = FramePipeline(KafkaSink(producer, "k", "k.dlq"), "replay")

    for rec in read_recorded(path):
        pipeline.handle(rec.frame, 1)

    assert [t for t, *_ in producer.sent] == ["k", "k.dlq", "k"]
