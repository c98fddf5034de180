"""Where studies live: Optuna's RDB storage, in the schema ``optuna`` of the project's PostgreSQL database.

Optuna creates its own tables (``studies``, ``trials``, ...) on first use; on PostgreSQL they go in the schema
``optuna`` (created when missing), so they never mix with ``market``/``etl``/``trading``. Any other SQLAlchemy
URL (``sqlite:///studies.db``) is used as it is. A study is found again by its name: running the same command,
or an Airflow task of the ``optimize_strategy`` DAG, adds trials to it.
"""

from __future__ import annotations

SCHEMA = "optuna"


def storage_url(database_url: str) -> str:
    """A SQLAlchemy URL Optuna can open (``postgres://`` and ``postgresql+psycopg2://`` alike)."""
    scheme, sep, rest = database_url.partition("://")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg2://{rest}"
    return database_url


def open_storage(database_url: str, *, create: bool = False):
    """Optuna's ``RDBStorage`` on ``database_url``; ``create``: make the schema and tables first (do it in one
    process before several open it, so they do not race to create them)."""
    import optuna

    url = storage_url(database_url)
    kwargs: dict = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {"options": f"-c search_path={SCHEMA}"}
        if create:
            _create_schema(url)
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=not create,
                                      skip_table_creation=not create)


def _create_schema(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if not conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": SCHEMA}).first():
                conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    finally:
        engine.dispose()
