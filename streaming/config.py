"""Settings of the streaming sidecar, validated once at start (env ``STREAMING_*`` and ``KAFKA_*``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")


class SettingsError(ValueError):
    """An invalid setting; the message names it."""


class KafkaSettings(BaseSettings):
    """Where and how to publish. Extra librdkafka keys come from ``KAFKA_CONFIG`` (JSON)."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "binance.klines"
    dlq_topic: str = "binance.klines.dlq"
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    config: dict[str, str | int | bool] = Field(default_factory=dict)

    def producer_config(self) -> dict:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 200_000,
            **self.config,
        }


class StreamingSettings(BaseSettings):
    """What to stream. ``mode=auto`` tries live Binance and falls back to the replay."""

    model_config = SettingsConfigDict(env_prefix="STREAMING_", frozen=True)

    mode: Literal["auto", "live", "replay"] = "auto"
    symbols: Annotated[tuple[str, ...], NoDecode] = ("BTCUSDT",)
    intervals: Annotated[tuple[str, ...], NoDecode] = ("1m",)
    ws_url: str = "wss://stream.binance.com:9443"
    connect_timeout: float = Field(5.0, gt=0)
    replay_files: Annotated[tuple[Path, ...], NoDecode] = (Path("data/sample/BTCUSDT-1m.csv.gz"),)
    replay_speed: float = Field(60.0, gt=0)
    replay_loop: bool = False

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

    @field_validator("replay_files", mode="before")
    @classmethod
    def _split_files(cls, v):
        return tuple(Path(p.strip()) for p in v.split(",") if p.strip()) if isinstance(v, str) else v

    @field_validator("replay_speed", mode="before")
    @classmethod
    def _speed(cls, v):
        return parse_speed(v) if isinstance(v, str) else v


def parse_speed(text: str) -> float:
    """``60x`` or ``60`` -> 60.0 (times real time); ``max`` -> infinity (no pacing)."""
    t = text.strip().lower()
    if t == "max":
        return math.inf
    try:
        return float(t.removesuffix("x"))
    except ValueError:
        raise ValueError(f"speed must look like 60x or max, got {text!r}") from None


def load_settings(**overrides) -> tuple[StreamingSettings, KafkaSettings]:
    """Build both settings objects (env, then the CLI's overrides); a bad value names its setting."""
    try:
        streaming = StreamingSettings(**{k: v for k, v in overrides.items() if v is not None})
        kafka = KafkaSettings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    return streaming, kafka


def _describe(exc: ValidationError) -> str:
    model = exc.title
    prefix = "STREAMING_" if model == "StreamingSettings" else "KAFKA_"
    parts = [f"{prefix}{'_'.join(str(p) for p in e['loc'][:1]).upper()}: {e['msg']}" for e in exc.errors()]
    return "invalid setting " + "; ".join(parts)
