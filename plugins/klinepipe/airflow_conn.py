"""The Airflow side's connections, from Airflow (connections ``klinepipe_db`` / ``klinepipe_kafka``) or else from the
settings (``klinepipe.settings``: ``DATABASE_URL``, ``KAFKA_*``, ``BINANCE_REST_URL``, ...). A task loads the
settings once and passes them to each call here (a call without them loads them itself); every value is checked
with a one-line ``KlinepipeConfigError`` naming it (a task fails with that line; retrying a bad setting cannot help).

``database_engine()`` also tries the database once: unreachable is a ``KlinepipeRetryableError`` (Airflow retries
the task); a missing database, refused credentials or an unmigrated schema are ``KlinepipeConfigError``.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from klinepipe.errors import KlinepipeConfigError, KlinepipeRetryableError
from klinepipe.outage import one_line
from klinepipe.settings import PipelineSettings, load_settings

DB_CONN_ID = "klinepipe_db"
KAFKA_CONN_ID = "klinepipe_kafka"
_SERVERS = re.compile(r"[^\s,:/]+:\d{1,5}(,[^\s,:/]+:\d{1,5})*")


def _loaded(settings: PipelineSettings | None) -> PipelineSettings:
    return load_settings() if settings is None else settings


def _connection(conn_id: str, settings: PipelineSettings):
    from airflow.sdk import BaseHook

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - Airflow raises its own not-found type per version
        if "isn't defined" in str(exc) or "not found" in str(exc).lower() or type(exc).__name__.endswith("NotFoundException"):
            env = settings.db_connection_env if conn_id == DB_CONN_ID else settings.kafka_connection_env
            if env:  # set, yet not readable as a connection
                raise KlinepipeConfigError(f"AIRFLOW_CONN_{conn_id.upper()}: Airflow cannot read it as connection {conn_id!r} "
                                           "(expected JSON such as {\"conn_type\": ..., \"host\": ...} or a URI)") from None
            return None
        raise KlinepipeConfigError(f"Airflow connection {conn_id!r} (AIRFLOW_CONN_{conn_id.upper()}) cannot be read: "
                                   f"{one_line(exc)}") from None


def database_url(settings: PipelineSettings | None = None) -> str:
    """The PostgreSQL URL (a well-formed ``postgresql://`` one, else ``KlinepipeConfigError`` naming where it came from)."""
    settings = _loaded(settings)
    conn = _connection(DB_CONN_ID, settings)
    if conn is None:
        url = settings.database_url
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


def database_engine(settings: PipelineSettings | None = None, **kwargs) -> sa.Engine:
    """An engine on ``database_url()``, tried once (10 s at most): a task fails with one line when it cannot work."""
    from klinepipe.db import make_engine

    settings = _loaded(settings)
    url = database_url(settings)
    source = "DATABASE_URL" if _connection(DB_CONN_ID, settings) is None else f"Airflow connection {DB_CONN_ID!r}"
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


def kafka_config(settings: PipelineSettings | None = None) -> dict:
    settings = _loaded(settings)
    conn = _connection(KAFKA_CONN_ID, settings)
    if conn is not None:
        config = dict(conn.extra_dejson)
        if "bootstrap.servers" not in config:
            raise KlinepipeConfigError(f"Airflow connection {KAFKA_CONN_ID!r}: its extra needs 'bootstrap.servers'")
        return config
    servers = settings.kafka_bootstrap_servers
    if not servers:
        raise KlinepipeConfigError(f"no Kafka: set the Airflow connection {KAFKA_CONN_ID!r} or KAFKA_BOOTSTRAP_SERVERS")
    if not _SERVERS.fullmatch(servers):
        raise KlinepipeConfigError(f"KAFKA_BOOTSTRAP_SERVERS: expected host:port[,host:port...], got {servers!r}")
    return {"bootstrap.servers": servers}


def klines_topic(settings: PipelineSettings | None = None) -> str:
    return _loaded(settings).kafka_topic


def dead_letter_topic(settings: PipelineSettings | None = None) -> str:
    return _loaded(settings).kafka_dlq_topic


def binance_client(settings: PipelineSettings | None = None):
    """A python-binance ``Client`` for public market data; ``BINANCE_REST_URL`` points it elsewhere (testnet, a fake)."""
    base = _loaded(settings).binance_rest_url
    from binance import Client

    client = Client(None, None, ping=False, requests_params={"timeout": (5, 30)})  # connect, read (s)
    if base:
        client.API_URL = f"{base}/api"
    return client


def check_schedule_settings() -> None:
    """Every setting, checked where a task can fail with the line (``assets.py`` only falls back at parse time)."""
    load_settings()
