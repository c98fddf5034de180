"""Settings of the Airflow side (DAG tasks, the topic watcher, the Trading page): one frozen, typed object.

``load_settings()`` is the only reader of the environment on this side. A task builds the object once, inside the
task (never at DAG parse time), and hands it to what it calls (``airflow_conn``); a bad value fails the task with
ONE line naming the variable (``KlinepipeConfigError``). The DAG files' schedule has to be known while Airflow
parses them: ``assets.py`` calls ``load_settings(fallback=...)``, which logs the bad values in one line each and
uses a safe default for them, and ingest's ``plan`` task fails with the same line.

| variable | default | what |
|---|---|---|
| ``DATABASE_URL`` | – | the pipeline's PostgreSQL when the Airflow connection ``klinepipe_db`` is not set |
| ``KAFKA_BOOTSTRAP_SERVERS`` | – | the broker when the Airflow connection ``klinepipe_kafka`` is not set |
| ``KAFKA_TOPIC`` / ``KAFKA_DLQ_TOPIC`` | ``binance.klines`` / ``.dlq`` | the klines topic and the sidecar's dead-letter topic |
| ``BINANCE_REST_URL`` | Binance | REST base (no ``/api``) for backfills: testnet, a fake |
| ``KLINEPIPE_INGEST_SCHEDULE`` | ``both`` | ingest on ``cron`` (every minute), ``event`` (the watcher) or ``both`` |
| ``KLINEPIPE_TRIGGER_POLL_S`` | ``2`` | seconds between the watcher's looks at the topic |
| ``KLINEPIPE_REPORTS_DIR`` | ``.data/reports`` | where the backtest DAG writes its reports |
| ``KLINEPIPE_METRICS_TOKEN`` | – | a bearer token Prometheus may scrape ``/klinepipe/metrics`` with |
| ``TRADER_MODE`` | ``paper`` | the mode the Trading page shows before the trader recorded anything |
| ``STREAMING_SYMBOLS``, ``STREAMING_INTERVALS`` | – | the sidecar's subscriptions, checked for staleness by quality |

The two ``AIRFLOW_CONN_*`` variables are read by Airflow itself; they are here only so that a value Airflow cannot
read is reported as such.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from klinepipe import DLQ_TOPIC, KLINES_TOPIC
from klinepipe.errors import KlinepipeConfigError

SCHEDULES = ("cron", "event", "both")
TRADER_MODES = ("paper", "testnet", "demo", "live")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_URL = re.compile(r"https?://[^\s/]+(/\S*)?")


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    kafka_bootstrap_servers: str | None = Field(None, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic: str = Field(KLINES_TOPIC, validation_alias="KAFKA_TOPIC")
    kafka_dlq_topic: str = Field(DLQ_TOPIC, validation_alias="KAFKA_DLQ_TOPIC")
    binance_rest_url: str | None = Field(None, validation_alias="BINANCE_REST_URL")
    ingest_schedule: str = Field("both", validation_alias="KLINEPIPE_INGEST_SCHEDULE")
    trigger_poll_s: float = Field(2.0, validation_alias="KLINEPIPE_TRIGGER_POLL_S")
    reports_dir: Path = Field(Path(".data") / "reports", validation_alias="KLINEPIPE_REPORTS_DIR")
    metrics_token: SecretStr | None = Field(None, validation_alias="KLINEPIPE_METRICS_TOKEN")
    trader_mode: str = Field("paper", validation_alias="TRADER_MODE")
    streaming_symbols: str = Field("", validation_alias="STREAMING_SYMBOLS")
    streaming_intervals: str = Field("", validation_alias="STREAMING_INTERVALS")
    db_connection_env: str | None = Field(None, validation_alias="AIRFLOW_CONN_KLINEPIPE_DB")
    kafka_connection_env: str | None = Field(None, validation_alias="AIRFLOW_CONN_KLINEPIPE_KAFKA")

    @field_validator("database_url", "kafka_bootstrap_servers", "binance_rest_url", "metrics_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, v):
        return None if isinstance(v, str) and not v.strip() else v.strip() if isinstance(v, str) else v

    @field_validator("kafka_topic", "kafka_dlq_topic")
    @classmethod
    def _topic_name(cls, v: str) -> str:
        if not _TOPIC.fullmatch(v) or v in (".", ".."):
            raise ValueError(f"a Kafka topic name is 1-249 of a-z A-Z 0-9 . _ -, got {v!r}")
        return v

    @field_validator("binance_rest_url")
    @classmethod
    def _rest_url(cls, v: str | None) -> str | None:
        if v is not None and not _URL.fullmatch(v):
            raise ValueError(f"expected an http(s):// URL such as https://api.binance.com, got {v!r}")
        return v.rstrip("/") if v else None

    @field_validator("ingest_schedule", mode="before")
    @classmethod
    def _schedule(cls, v):
        mode = str(v).strip()
        if mode not in SCHEDULES:
            raise ValueError(f"expected cron, event or both, got {mode!r}")
        return mode

    @field_validator("trigger_poll_s", mode="before")
    @classmethod
    def _poll(cls, v):
        text = str(v).strip()
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0.1 <= value <= 3600:
            raise ValueError(f"expected seconds between 0.1 and 3600, got {text!r}")
        return value

    @field_validator("reports_dir", mode="before")
    @classmethod
    def _reports_dir(cls, v):
        return Path(".data") / "reports" if isinstance(v, str) and not v.strip() else v

    @field_validator("trader_mode", mode="before")
    @classmethod
    def _mode(cls, v):  # the page's default only: an unknown mode shows paper (the trader itself refuses it)
        mode = str(v).strip().lower()
        return mode if mode in TRADER_MODES else "paper"


    @property
    def streaming_subscriptions(self) -> dict[str, str]:
        """The sidecar's subscription settings, as ``quality.configured_streams`` reads them."""
        return {"STREAMING_SYMBOLS": self.streaming_symbols, "STREAMING_INTERVALS": self.streaming_intervals}


# What parsing uses instead of a bad value (a bad schedule falls back to the plain cron, which needs no watcher).
FALLBACKS = {"KLINEPIPE_INGEST_SCHEDULE": "cron"}


def load_settings(fallback: Callable[[str, object], None] | None = None) -> PipelineSettings:
    """The settings from the environment; ``KlinepipeConfigError`` naming every bad variable in one line. With
    ``fallback``, a bad variable is reported as ``fallback(line, default)`` and replaced by its default instead."""
    try:
        return PipelineSettings()
    except ValidationError as exc:
        problems = {str(e["loc"][0]): e["msg"].removeprefix("Value error, ") for e in exc.errors()}
    if fallback is None:
        raise KlinepipeConfigError("; ".join(f"{name}: {msg}" for name, msg in problems.items()))
    defaults = {name: FALLBACKS.get(name, _default(name)) for name in problems}
    for name, msg in problems.items():
        fallback(f"{name}: {msg}", defaults[name])
    return PipelineSettings(**defaults)


def lenient_settings(log: logging.Logger) -> PipelineSettings:
    """For a reader that must keep answering (the Trading page): a bad value is one logged line and its default."""
    return load_settings(fallback=lambda line, default: log.warning("%s; using %r until it is fixed", line, default))


def _default(alias: str):
    return next(f.default for f in PipelineSettings.model_fields.values() if f.validation_alias == alias)
