"""The sidecar's settings: read from the environment, a bad one fails at start naming it; Kafka TLS, SCRAM and MSK IAM."""

import json

import pytest

from streaming.config import SettingsError, load_settings
from streaming.kafka_security import msk_iam_token_provider


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
