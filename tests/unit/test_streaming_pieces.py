"""Pure pieces of the sidecar: frames, limits, symbols, URLs, Kafka security settings, metrics, the pipeline."""

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streaming.config import SettingsError, load_settings
from streaming.connection import stream_url
from streaming.envelope import Control, control_kind, read_frame
from streaming.kafka_security import msk_iam_token_provider
from streaming.kafka_sink import KafkaSink
from streaming.limits import SlidingWindow, backoff_delay
from streaming.metrics import Stats, StatsCollector
from streaming.frame_pipeline import FramePipeline
from streaming.universe import UnknownSymbolsError, check_symbols, select_universe, split_streams, stream_names

CAPTURE = Path(__file__).resolve().parents[2] / "data" / "sample" / "BTCUSDT-kline_5m-ws-20210914.jsonl"
INFO = {"symbols": [{"symbol": "BTCUSDT", "status": "TRADING", "quoteAsset": "USDT"},
                    {"symbol": "ETHUSDT", "status": "TRADING", "quoteAsset": "USDT"},
                    {"symbol": "LUNAUSDT", "status": "BREAK", "quoteAsset": "USDT"},
                    {"symbol": "ETHBTC", "status": "TRADING", "quoteAsset": "BTC"}]}


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


def test_backoff_is_jittered_exponential_and_capped():
    low = [backoff_delay(a, 0.5, 30.0, rand=lambda lo, hi: lo) for a in range(10)]
    high = [backoff_delay(a, 0.5, 30.0, rand=lambda lo, hi: hi) for a in range(10)]

    assert high[:4] == [0.5, 1.0, 2.0, 4.0] and max(high) == 30.0 and low[0] == 0.25 and low[-1] == 15.0


def test_sliding_window_allows_n_events_per_window():
    now = [0.0]
    window = SlidingWindow(3, 300.0, clock=lambda: now[0])

    for _ in range(3):
        assert window.wait_needed() == 0.0
        window.record()
        now[0] += 1.0

    assert window.wait_needed() == pytest.approx(297.0)
    now[0] = 300.5
    assert window.wait_needed() == 0.0


def test_symbols_checked_and_universe_selected():
    assert check_symbols(INFO, ("BTCUSDT", "LUNAUSDT")) == ["LUNAUSDT"]  # known, but not trading
    with pytest.raises(UnknownSymbolsError, match="unknown symbol\\(s\\) FOOUSDT, BARBTC"):
        check_symbols(INFO, ("BTCUSDT", "FOOUSDT", "BARBTC"))
    assert select_universe(INFO, "usdt") == ("BTCUSDT", "ETHUSDT")
    assert select_universe(INFO, "USDT", limit=1) == ("BTCUSDT",)
    with pytest.raises(UnknownSymbolsError):
        select_universe(INFO, "EUR")


def test_stream_names_split_and_url_forms():
    names = stream_names(("BTCUSDT", "ETHUSDT"), ("1s", "1M"))

    assert names == ["btcusdt@kline_1s", "btcusdt@kline_1M", "ethusdt@kline_1s", "ethusdt@kline_1M"]
    assert split_streams(names, 3) == [names[:3], names[3:]]
    assert stream_url("wss://h:9443", "combined", names[:2]) == (
        "wss://h:9443/stream?streams=btcusdt@kline_1s/btcusdt@kline_1M", False)
    assert stream_url("wss://h:9443", "raw", names[:2]) == ("wss://h:9443/ws/btcusdt@kline_1s/btcusdt@kline_1M", False)
    assert stream_url("wss://h:9443", "subscribe", names) == ("wss://h:9443/stream", True)
    many = [f"sym{i:04d}usdt@kline_1m" for i in range(1024)]
    assert stream_url("wss://h:9443", "combined", many) == ("wss://h:9443/stream", True)  # too long for a URL
    assert stream_url("wss://h:9443", "raw", many) == ("wss://h:9443/ws", True)


@pytest.mark.parametrize(("env", "named"), [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}, "KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM"}, "KAFKA_AWS_REGION"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"STREAMING_URL_FORM": "multiplex"}, "STREAMING_URL_FORM"),
    ({"STREAMING_STREAMS_PER_CONNECTION": "2000"}, "STREAMING_STREAMS_PER_CONNECTION"),
    ({"STREAMING_WS_URL": "stream.binance.com"}, "STREAMING_WS_URL"),
    ({"STREAMING_MODE": "record"}, "--out"),
])
def test_bad_settings_fail_at_start_naming_the_setting(monkeypatch, env, named):
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_scram_and_tls_settings_become_librdkafka_keys(monkeypatch):
    for k, v in {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "u",
                 "KAFKA_SASL_PASSWORD": "p", "KAFKA_SSL_CA_LOCATION": "/etc/ca.pem"}.items():
        monkeypatch.setenv(k, v)

    cfg = load_settings()[1].producer_config()

    assert {k: cfg[k] for k in ("security.protocol", "sasl.mechanism", "sasl.username", "sasl.password", "ssl.ca.location")} == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u", "sasl.password": "p",
        "ssl.ca.location": "/etc/ca.pem"}
    assert cfg["enable.idempotence"] is True and cfg["acks"] == "all"


def test_msk_iam_uses_oauthbearer_with_a_signed_token(monkeypatch):
    iam = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM", "KAFKA_AWS_REGION": "eu-west-1"}
    for k, v in iam.items():
        monkeypatch.setenv(k, v)

    cfg = load_settings()[1].producer_config()
    token = msk_iam_token_provider("eu-west-1", generate=lambda region: (f"token-for-{region}", 1_700_000_900_000))(None)

    assert cfg["sasl.mechanism"] == "OAUTHBEARER" and callable(cfg["oauth_cb"]) and "sasl.username" not in cfg
    assert token == ("token-for-eu-west-1", 1_700_000_900.0)


class StubProducer:
    """Accepts ``room`` messages, then raises BufferError like a full librdkafka queue."""

    def __init__(self, room: int) -> None:
        self.room, self.sent = room, []

    def produce(self, topic, value=None, key=None, headers=None, timestamp=0, on_delivery=None):
        if len(self.sent) >= self.room:
            raise BufferError("queue full")
        self.sent.append((topic, key, value, dict(headers)))

    def poll(self, _timeout=0):
        return 0

    def __len__(self):
        return len(self.sent)


def test_pipeline_routes_klines_dead_letters_garbage_and_returns_control_frames():
    producer = StubProducer(room=100)
    sink = KafkaSink(producer, "k", "k.dlq")
    frame = CAPTURE.read_bytes().splitlines()[0]

    results = [FramePipeline(sink, "binance").handle(f, 1) for f in (frame, b"nope", b'{"result":null,"id":7}')]

    assert results[:2] == [None, None] and results[2][0] is Control.REPLY
    assert [(t, k) for t, k, _, _ in producer.sent] == [("k", b"BTCUSDT:5m"), ("k.dlq", None)]
    assert producer.sent[1][3]["error"].startswith(b"not a kline event")
    assert producer.sent[0][3] == {"source": b"binance", "received_at": b"1"}


def test_a_full_producer_keeps_messages_in_order_and_signals_backpressure():
    producer = StubProducer(room=2)
    sink = KafkaSink(producer, "k", "k.dlq", high_water=10)

    for i in range(5):
        sink.publish(b"K", str(i).encode(), "binance", i)
    congested = sink.congested
    producer.room = 10
    sink.poll()

    assert congested and not sink.congested
    assert [v for _, _, v, _ in producer.sent] == [b"0", b"1", b"2", b"3", b"4"]


def test_metrics_are_exposed_in_prometheus_format():
    stats = Stats(frames=10, acked=7, reconnects=2)
    stats.count(stats.published, "binance", 9)
    stats.observe_latency_ms(4.0)
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats, lambda: 3))

    text = generate_latest(registry).decode()

    for line in ("streaming_frames_received_total 10.0", 'streaming_messages_published_total{source="binance"} 9.0',
                 "streaming_reconnects_total 2.0", "streaming_producer_queue_depth 3.0",
                 'streaming_receive_to_ack_seconds_bucket{le="0.005"} 1.0', "streaming_backfilled_candles_total 0.0"):
        assert line in text
    assert json.dumps(stats.rotations) == "{}"


@pytest.mark.parametrize("module", ["streaming.closed_candle_ledger", "streaming.universe", "streaming.limits", "streaming.kafka_security",
                                    "streaming.envelope", "streaming.replay"])
def test_pure_streaming_modules_import_no_io_library(module):
    import subprocess
    import sys

    io_libs = ["confluent_kafka", "websockets", "aiohttp", "requests", "httpx", "psycopg", "sqlalchemy", "prometheus_client"]
    code = f"import sys, {module}; print(','.join(m for m in {io_libs!r} if m in sys.modules))"

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    assert out == ""
