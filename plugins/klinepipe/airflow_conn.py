"""Connection settings for DAG tasks, read inside tasks (never at parse time).

- PostgreSQL: Airflow connection ``klinepipe_db`` (e.g. ``AIRFLOW_CONN_KLINEPIPE_DB``), else ``DATABASE_URL``.
- Kafka: Airflow connection ``klinepipe_kafka`` of type ``kafka`` whose extra is a librdkafka
  config dict, else ``KAFKA_BOOTSTRAP_SERVERS``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from klinepipe import DLQ_TOPIC, KLINES_TOPIC
from klinepipe.errors import ConfigError

DB_CONN_ID = "klinepipe_db"
KAFKA_CONN_ID = "klinepipe_kafka"


def _connection(conn_id: str):
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - Airflow raises its own not-found type per version
        if "isn't defined" in str(exc) or "not found" in str(exc).lower() or type(exc).__name__.endswith("NotFoundException"):
            return None
        raise


def database_url() -> str:
    conn = _connection(DB_CONN_ID)
    if conn is not None:
        host, query = conn.host or None, {k: str(v) for k, v in conn.extra_dejson.items()}
        if host and host.startswith("/"):  # a unix-socket directory goes in the query
            host, query = None, {**query, "host": conn.host}
        return sa.engine.URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=host,
            port=conn.port or None,
            database=conn.schema or None,
            query=query,
        ).render_as_string(hide_password=False)
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    raise ConfigError(f"no database: set the Airflow connection {DB_CONN_ID!r} or DATABASE_URL")


def kafka_config() -> dict:
    conn = _connection(KAFKA_CONN_ID)
    if conn is not None:
        config = dict(conn.extra_dejson)
        if "bootstrap.servers" not in config:
            raise ConfigError(f"Airflow connection {KAFKA_CONN_ID!r}: its extra needs 'bootstrap.servers'")
        return config
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return {"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]}
    raise ConfigError(f"no Kafka: set the Airflow connection {KAFKA_CONN_ID!r} or KAFKA_BOOTSTRAP_SERVERS")


def klines_topic() -> str:
    return os.environ.get("KAFKA_TOPIC", KLINES_TOPIC)


def dead_letter_topic() -> str:
    return os.environ.get("KAFKA_DLQ_TOPIC", DLQ_TOPIC)


def binance_client():
    """A python-binance ``Client`` for public market data; ``BINANCE_REST_URL`` points it elsewhere (testnet, a fake)."""
    from binance import Client

    client = Client(None, None, ping=False, requests_params={"timeout": (5, 30)})  # connect, read (s)
    base = os.environ.get("BINANCE_REST_URL")
    if base:
        client.API_URL = f"{base.rstrip('/')}/api"
    return client
