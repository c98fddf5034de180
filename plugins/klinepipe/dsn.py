"""Database URLs (pure): one conversion from the SQLAlchemy form every setting takes to libpq's form.

``DATABASE_URL`` may be written either way (``postgresql+psycopg2://...`` or ``postgresql://...``);
psql and ``psycopg2.connect`` take only the second. Every process converts with ``libpq_dsn``.
"""

from __future__ import annotations


def libpq_dsn(url: str) -> str:
    """A libpq DSN (``postgresql://...``, as psql and ``psycopg2.connect`` take it) from a SQLAlchemy-style URL
    (``postgresql+psycopg2://...``): the driver suffix dropped, the rest kept as written."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"
