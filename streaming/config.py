"""Settings of the streaming sidecar: frozen, typed, validated once at start (env ``STREAMING_*``, ``KAFKA_*`` and
``BINANCE_REST_URL``, the REST base every process uses for market data; ``STREAMING_REST_URL`` is its deprecated name).

A bad value fails at start with ``SettingsError`` naming the environment variable. ``kafka_security.py``
turns the ``KAFKA_*`` security settings into librdkafka keys (PLAINTEXT, SSL, SASL_SSL + SCRAM, MSK IAM).
"""

from __future__ import annotations

import logging
import os
import math
import re
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, IPvAnyAddress, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as EnvParseError

from klinepipe import DLQ_TOPIC, KLINES_TOPIC
from klinepipe.binance.intervals import INTERVALS
from klinepipe.binance.times import parse_time_ms
from streaming.errors import SettingsError

log = logging.getLogger(__name__)
DEPRECATED = {"STREAMING_REST_URL": "BINANCE_REST_URL"}  # old name -> the one name, still read (with a warning)
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


class KafkaSettings(BaseSettings):
    """Where and how to publish. Extra librdkafka keys come from ``KAFKA_CONFIG`` (JSON)."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = KLINES_TOPIC
    dlq_topic: str = DLQ_TOPIC
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    aws_region: str | None = None
    queue_max_messages: int = Field(100_000, ge=1_000)
    queue_max_kbytes: int = Field(131_072, ge=1_024)
    message_timeout_ms: int = Field(0, ge=0)  # 0: retry until acknowledged (never drop)
    linger_ms: int = Field(5, ge=0)
    stall_timeout: float = Field(15.0, gt=0)  # s without acks (broker reachable) before the producer is replaced
    config: dict[str, str | int | bool] = Field(default_factory=dict)

    @field_validator("topic", "dlq_topic")
    @classmethod
    def _topic_name(cls, v: str):
        if not _TOPIC.fullmatch(v) or v in (".", ".."):
            raise ValueError(f"a Kafka topic name is 1-249 of a-z A-Z 0-9 . _ -, got {v!r}")
        return v

    @model_validator(mode="after")
    def _check_security(self):
        from streaming.kafka_security import check_security

        check_security(self)
        return self

    def producer_config(self) -> dict:
        from streaming.kafka_security import security_config

        return {
            "bootstrap.servers": self.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": self.linger_ms,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": self.queue_max_messages,
            "queue.buffering.max.kbytes": self.queue_max_kbytes,
            "message.timeout.ms": self.message_timeout_ms,
            "reconnect.backoff.max.ms": 2_000,
            **security_config(self),
            **self.config,
        }


class StreamingSettings(BaseSettings):
    """What to stream and how. ``mode=auto`` tries live Binance and falls back to the replay."""

    model_config = SettingsConfigDict(env_prefix="STREAMING_", frozen=True, populate_by_name=True)

    mode: Literal["auto", "live", "demo", "replay", "record"] = "auto"
    symbols: Annotated[tuple[str, ...], NoDecode] = ("BTCUSDT",)
    universe: str | None = None  # e.g. USDT: every TRADING symbol quoted in USDT (replaces symbols)
    universe_limit: int = Field(0, ge=0)  # 0: no limit
    intervals: Annotated[tuple[str, ...], NoDecode] = ("1m",)
    ws_url: str = "wss://stream.binance.com:9443"
    rest_url: str = Field("https://api.binance.com", validation_alias=AliasChoices("BINANCE_REST_URL", "STREAMING_REST_URL"))
    url_form: Literal["combined", "raw", "subscribe"] = "combined"
    streams_per_connection: int = Field(1024, ge=1, le=1024)
    check_symbols: bool = True
    connect_timeout: float = Field(5.0, gt=0)
    silence_timeout: float = Field(15.0, gt=0)
    rotate_after: float = Field(23.5 * 3600, gt=0)  # Binance cuts every connection at 24 h
    overlap_timeout: float = Field(10.0, gt=0)
    backoff_initial: float = Field(0.5, gt=0)
    backoff_max: float = Field(30.0, gt=0)
    healthy_after: float = Field(60.0, gt=0)
    connect_attempts_per_5min: int = Field(300, ge=1, le=300)
    control_messages_per_second: float = Field(4.0, gt=0, le=5)
    subscribe_batch: int = Field(100, ge=1, le=1024)
    backfill: bool = True
    backfill_concurrency: int = Field(4, ge=1)
    metrics_port: int = Field(9108, ge=0, le=65535)  # 0: no /metrics endpoint
    metrics_host: IPvAnyAddress = IPv4Address("127.0.0.1")  # this machine only; 0.0.0.0 in a container
    record_out: Path | None = None
    replay_files: Annotated[tuple[Path, ...], NoDecode] = (Path("data/sample/BTCUSDT-1m.csv.gz"),)
    replay_speed: float = Field(60.0, gt=0)
    replay_loop: bool = False
    # demo: the replay files looped with their times shifted to the present (streaming/demo_market.py)
    demo_speed: float = Field(1.0, gt=0, allow_inf_nan=False)  # 1: a 1m candle closes every minute of the wall clock
    demo_history: int = Field(500, ge=0)  # candles each series starts with when nothing recent is stored
    # epoch ms or ISO time (every series), or SERIES=TIME pairs (one resume point per series): the first pass
    # skips each series' frames up to its point
    replay_after: Annotated[int | dict[str, int] | None, NoDecode] = None
    startup_timeout: float = Field(30.0, gt=0)  # s to wait at start for the broker (and exchangeInfo) before exit 1

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, v):
        items = v.split(",") if isinstance(v, str) else v
        out = tuple(s.strip().upper() for s in items if s.strip())
        if not out or not all(s.isalnum() for s in out):
            raise ValueError(f"expected comma-separated symbols such as BTCUSDT,ETHUSDT, got {v!r}")
        return out

    @field_validator("intervals", mode="before")
    @classmethod
    def _split_intervals(cls, v):
        items = v.split(",") if isinstance(v, str) else v
        out = tuple(s.strip() for s in items if s.strip())
        bad = [s for s in out if s not in INTERVALS]
        if not out or bad:
            raise ValueError(f"unknown interval(s) {bad}; valid: {', '.join(INTERVALS)}")
        return out

    @field_validator("universe")
    @classmethod
    def _quote_asset(cls, v):
        if v is not None and not (v.strip().isalnum() and v.strip().isascii()):
            raise ValueError(f"expected a quote asset such as USDT, got {v!r}")
        return v.strip().upper() if v is not None else None

    @field_validator("ws_url", "rest_url")
    @classmethod
    def _url(cls, v: str):
        if not v.startswith(("ws://", "wss://", "http://", "https://")):
            raise ValueError(f"expected a ws(s):// or http(s):// URL, got {v!r}")
        return v.rstrip("/")

    @field_validator("replay_files", mode="before")
    @classmethod
    def _split_files(cls, v):
        return tuple(Path(p.strip()) for p in v.split(",") if p.strip()) if isinstance(v, str) else v

    @field_validator("replay_after", mode="before")
    @classmethod
    def _after(cls, v):
        return parse_resume_points(v) if isinstance(v, str) else v

    @field_validator("replay_speed", "demo_speed", mode="before")
    @classmethod
    def _speed(cls, v):
        return parse_speed(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check_mode(self):
        if self.mode == "record" and self.record_out is None:
            raise ValueError("STREAMING_RECORD_OUT (--out): record mode needs an output file")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("STREAMING_BACKOFF_MAX must be >= STREAMING_BACKOFF_INITIAL")
        return self


def parse_speed(text: str) -> float:
    """``60x`` or ``60`` -> 60.0 (times real time); ``max`` -> infinity (no pacing)."""
    t = text.strip().lower()
    if t == "max":
        return math.inf
    try:
        return float(t.removesuffix("x"))
    except ValueError:
        raise ValueError(f"speed must look like 60x or max, got {text!r}") from None


def parse_resume_points(text: str) -> int | dict[str, int] | None:
    """``2024-03-01T00:00:00Z`` (every series) or ``BTCUSDT:1m=1709251260000,BTCUSDT:1h=2024-03-22T10:00:00Z``
    (one point per series; an item without ``SERIES=`` applies to every other series) -> epoch ms."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not any("=" in item for item in items):
        return parse_time_ms(text)
    points: dict[str, int] = {}
    for item in items:
        series, _, at = item.rpartition("=") if "=" in item else ("*", "", item)
        symbol, colon, interval = series.strip().partition(":")
        if series != "*" and not (colon and symbol.isalnum() and interval in INTERVALS):
            raise ValueError(f"expected SYMBOL:interval=TIME such as BTCUSDT:1m=1709251260000, got {item!r}")
        ms = parse_time_ms(at)
        if ms is None:
            raise ValueError(f"no time after {series}= in {item!r}")
        points["*" if series == "*" else f"{symbol.strip().upper()}:{interval}"] = ms
    return points


def load_settings(**overrides) -> tuple[StreamingSettings, KafkaSettings]:
    """Build both settings objects (env, then the CLI's overrides); a bad value names its setting."""
    for old, new in DEPRECATED.items():  # one warning line each
        if old in os.environ:
            log.warning("%s is deprecated: name it %s%s", old, new, f"; {new} is set too and wins" if new in os.environ else "")
    try:
        streaming = StreamingSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except EnvParseError as exc:
        raise SettingsError(_describe_parse(exc, "STREAMING_")) from None
    try:
        kafka = KafkaSettings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except EnvParseError as exc:
        raise SettingsError(_describe_parse(exc, "KAFKA_")) from None
    return streaming, kafka


def check_replay_files(files: tuple[Path, ...]) -> None:
    """Every replay file exists and says what it holds (JSONL, or a CSV named SYMBOL-INTERVAL...)."""
    from streaming.replay import series_from_name

    for path in files:
        if not path.is_file():
            raise SettingsError(f"invalid setting STREAMING_REPLAY_FILES (--file): no such file {str(path)!r}")
        if ".jsonl" not in path.suffixes:
            try:
                series_from_name(path)
            except ValueError as exc:
                raise SettingsError(f"invalid setting STREAMING_REPLAY_FILES (--file): {exc}") from None


def check_record_out(path: Path) -> None:
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise SettingsError(f"invalid setting STREAMING_RECORD_OUT (--out): cannot write {str(path)!r} "
                            f"({exc.strerror or exc})") from None


def _describe_parse(exc: EnvParseError, prefix: str) -> str:
    m = re.search(r'field "(\w+)"', str(exc))
    name = f"{prefix}{m[1].upper()}" if m else f"{prefix}*"
    return f"invalid setting {name}: not valid JSON (expected an object such as '{{\"client.id\": \"klinepipe\"}}')"


def _describe(exc: ValidationError) -> str:
    prefix = "STREAMING_" if exc.title == "StreamingSettings" else "KAFKA_"
    parts = []
    for e in exc.errors():
        msg = e["msg"].removeprefix("Value error, ")
        name = str(e["loc"][0]).upper() if e["loc"] else ""
        parts.append(f"{name if name in DEPRECATED.values() else prefix + name}: {msg}" if name else msg)
    return "invalid setting " + "; ".join(parts)
