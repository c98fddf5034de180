"""Settings of the DAG tasks, read inside tasks (never at parse time), each checked with a one-line
``KlinepipeConfigError`` naming it (a task fails with that line; retrying a bad setting cannot help):

| setting | what |
|---|---|
| Airflow connection ``klinepipe_db`` (``AIRFLOW_CONN_KLINEPIPE_DB``), else ``DATABASE_URL`` | the pipeline's PostgreSQL |
| Airflow connection ``klinepipe_kafka`` (type kafka, extra: librdkafka keys), else ``KAFKA_BOOTSTRAP_SERVERS`` | the broker |
| ``KAFKA_TOPIC``, ``KAFKA_DLQ_TOPIC`` | the klines topic and the sidecar's dead-letter topic |
| ``BINANCE_REST_URL`` | REST base for backfills (testnet, a fake); default Binance |
| ``KLINEPIPE_INGEST_SCHEDULE``, ``KLINEPIPE_TRIGGER_POLL_S`` | read at parse time by ``assets.py``: a bad value never |
| | breaks the DAG file (it falls back to the default); ``check_schedule_settings`` fails ingest's ``plan`` task |

``database_engine()`` also tries the database once: unreachable is a ``KlinepipeRetryableError`` (Airflow retries
the task); a missing database, refused credentials or an unmigrated schema are ``KlinepipeConfigError``.
"""

from __future__ import annotations

import os
import re

import sqlalchemy as sa

from klinepipe import DLQ_TOPIC, KLINES_TOPIC
from klinepipe.errors import KlinepipeConfigError, KlinepipeRetryableError
from klinepipe.outage import one_line

DB_CONN_ID = "klinepipe_db"
KAFKA_CONN_ID = "klinepipe_kafka"
SCHEDULES = ("cron", "event", "both")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_SERVERS = re.compile(r"[^\s,:/]+:\d{1,5}(,[^\s,:/]+:\d{1,5})*")


def _connection(conn_id: str):
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - Airflow raises its own not-found type per version
        if "isn't defined" in str(exc) or "not found" in str(exc).lower() or type(exc).__name__.endswith("NotFoundException"):
            if os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}"):  # set, yet not readable as a connection
                raise KlinepipeConfigError(f"AIRFLOW_CONN_{conn_id.upper()}: Airflow cannot read it as connection {conn_id!r} "
                                           "(expected JSON such as {\"conn_type\": ..., \"host\": ...} or a URI)") from None
            return None
        raise KlinepipeConfigError(f"Airflow connection {conn_id!r} (AIRFLOW_CONN_{conn_id.upper()}) cannot be read: "
                                   f"{one_line(exc)}") from None


def database_url() -> str:
    """The PostgreSQL URL (a well-formed ``postgresql://`` one, else ``KlinepipeConfigError`` naming where it came from)."""
    conn = _connection(DB_CONN_ID)
    if conn is None:
        url = os.environ.get("DATABASE_URL")
        if not url:
            raise KlinepipeConfigError(f"no database: set the Airflow connection {DB_CONN_ID!r} or DATABASE_URL")
        return _checked_url(url, "DATABASE_URL")
    return _checked_url(_connection_url(conn), f"Airflow connection {DB_CONN_ID!r}")


def _checked_url(url: str, source: str) -> str:
    try:
        u = sa.engine.make_url(url)
        u.port  # noqa: B018 - a non-numeric port raises here
    except (sa.exc.ArgumentError, ValueError):
        raise KlinepipeConfigError(f"{source}: not a database URL (expected postgresql://user:password@host:5432/db)") from None
    if not u.drivername.startswith("postgres"):
        raise KlinepipeConfigError(f"{source}: expected a postgresql:// URL, got {u.drivername}://")
    if not u.database:
        raise KlinepipeConfigError(f"{source}: the URL names no database (postgresql://host:5432/<database>)")
    return url


def database_engine(**kwargs) -> sa.Engine:
    """An engine on ``database_url()``, tried once (10 s at most): a task fails with one line when it cannot work."""
    from klinepipe.db import make_engine

    url = database_url()
    source = "DATABASE_URL" if _connection(DB_CONN_ID) is None else f"Airflow connection {DB_CONN_ID!r}"
    u = sa.engine.make_url(url)
    where = f"{u.host or u.query.get('host') or 'localhost'}:{u.port or 5432}/{u.database}"
    engine = make_engine(url, connect_args={"connect_timeout": 10}, **kwargs)
    try:
        with engine.connect() as conn:
            migrated = conn.execute(sa.text("SELECT to_regclass('etl.schema_migrations')")).scalar()
    except sa.exc.OperationalError as exc:
        engine.dispose()
        why = one_line(exc.orig or exc)
        if "does not exist" in why or "authentication failed" in why or "no password supplied" in why:
            raise KlinepipeConfigError(f"{source}: PostgreSQL at {where} refused it ({why})") from None
        raise KlinepipeRetryableError(f"PostgreSQL at {where} ({source}) is unreachable ({why})") from None
    if migrated is None:
        engine.dispose()
        raise KlinepipeConfigError(f"{source}: the database {where} has no klinepipe schema; run python -m klinepipe.migrate")
    return engine


def _connection_url(conn) -> str:
    """The URL of an Airflow connection of the database."""
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


def kafka_config() -> dict:
    conn = _connection(KAFKA_CONN_ID)
    if conn is not None:
        config = dict(conn.extra_dejson)
        if "bootstrap.servers" not in config:
            raise KlinepipeConfigError(f"Airflow connection {KAFKA_CONN_ID!r}: its extra needs 'bootstrap.servers'")
        return config
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if not servers:
        raise KlinepipeConfigError(f"no Kafka: set the Airflow connection {KAFKA_CONN_ID!r} or KAFKA_BOOTSTRAP_SERVERS")
    if not _SERVERS.fullmatch(servers):
        raise KlinepipeConfigError(f"KAFKA_BOOTSTRAP_SERVERS: expected host:port[,host:port...], got {servers!r}")
    return {"bootstrap.servers": servers}


def klines_topic() -> str:
    return _topic("KAFKA_TOPIC", KLINES_TOPIC)


def dead_letter_topic() -> str:
    return _topic("KAFKA_DLQ_TOPIC", DLQ_TOPIC)


def _topic(name: str, default: str) -> str:
    value = os.environ.get(name, default)
    if not _TOPIC.fullmatch(value) or value in (".", ".."):
        raise KlinepipeConfigError(f"{name}: a Kafka topic name is 1-249 of a-z A-Z 0-9 . _ -, got {value!r}")
    return value


def binance_rest_url() -> str | None:
    base = os.environ.get("BINANCE_REST_URL", "").strip()
    if base and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", base):
        raise KlinepipeConfigError(f"BINANCE_REST_URL: expected an http(s):// URL such as https://api.binance.com, got {base!r}")
    return base.rstrip("/") or None


def binance_client():
    """A python-binance ``Client`` for public market data; ``BINANCE_REST_URL`` points it elsewhere (testnet, a fake)."""
    base = binance_rest_url()
    from binance import Client

    client = Client(None, None, ping=False, requests_params={"timeout": (5, 30)})  # connect, read (s)
    if base:
        client.API_URL = f"{base}/api"
    return client


def ingest_schedule_mode() -> str:
    """``KLINEPIPE_INGEST_SCHEDULE``: cron, event or both (default)."""
    mode = os.environ.get("KLINEPIPE_INGEST_SCHEDULE", "both").strip()
    if mode not in SCHEDULES:
        raise KlinepipeConfigError(f"KLINEPIPE_INGEST_SCHEDULE: expected cron, event or both, got {mode!r}")
    return mode


def trigger_poll_seconds() -> float:
    """``KLINEPIPE_TRIGGER_POLL_S``: seconds between the watcher's looks at the topic (default 2)."""
    text = os.environ.get("KLINEPIPE_TRIGGER_POLL_S", "2").strip()
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 3600:
        raise KlinepipeConfigError(f"KLINEPIPE_TRIGGER_POLL_S: expected seconds between 0.1 and 3600, got {text!r}")
    return value


def check_schedule_settings() -> None:
    """The parse-time settings, checked where a task can fail with them (``assets.py`` only falls back)."""
    ingest_schedule_mode()
    trigger_poll_seconds()
    klines_topic()
