"""What ``make run`` prints once Airflow's UI answers: where each part is, how to log in, query and find the stack."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from klinepipe import connection_file
from klinepipe.dsn import libpq_dsn


# One series' newest rows, from its primary key (the plain ``ORDER BY open_time DESC LIMIT 5`` over all of
# market.candles sorts every row of every partition), and the newest orders.
SQL_EXAMPLES = (
    "SELECT * FROM market.candles WHERE symbol = 'BTCUSDT' AND interval = '1m' ORDER BY open_time DESC LIMIT 5;",
    "SELECT * FROM trading.orders ORDER BY created_at DESC LIMIT 20;",
)


def banner(*, url: str, database_url: str, bootstrap: str, answered: bool, logs: Path, passwords: Path,
           connection_file_path: Path | None) -> str:
    """The banner: Airflow's UI (``answered``: it answers its health check), the Trading page, metrics, SQL, logs,
    the settings other shells need (the password hidden) and ``make status``."""
    shown = {"DATABASE_URL": _shown_url(database_url), "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    return "\n".join(
        [
            "",
            "klinepipe is running. Press Ctrl-C to stop everything.",
            f"  Airflow UI : {url}   login: admin, password in {passwords} (readable by you only)"
            if answered else f"  Airflow UI : not answering at {url} yet; see {logs / 'airflow-api-server.log'}",
            "               DAGs ingest_klines (every minute and on each closed kline; candles and their features) and"
            " compute_features (what other DAGs load)",
            f"  Trading    : {url}/plugin/trading   (candles, trades, positions, kill switch, freshness)",
            f"  Metrics    : {url}/klinepipe/metrics (ETL), {metrics_url('STREAMING_METRICS_PORT', 9108)} (streaming),"
            f" {metrics_url('TRADER_METRICS_PORT', 9102)} (trader)",
            f"  SQL        : psql '{libpq_dsn(database_url)}'",
            *(f"               {query}" for query in SQL_EXAMPLES),
            f"  Logs       : {logs}   (supervisor: this terminal; one file per process, UTC times, capped and rotated)",
            f"  Other shells: the CLIs read {connection_file_path} while this runs, or paste:",
            *(f"               {line}" for line in connection_file.export_lines(shown)),
            "  Status     : make status   (or .venv/bin/python -m devstack status)",
            "",
        ]
    )


def ui_answers(url: str) -> bool:
    """Whether Airflow's API server answers its health check (one short try)."""
    try:
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _shown_url(url: str) -> str:
    """The URL as a libpq one, its password (if any) hidden: the banner is seen, the connection file is private."""
    parsed = sa.engine.make_url(url)
    return libpq_dsn(parsed.render_as_string(hide_password=True) if parsed.password else url)


def metrics_url(setting: str, default: int) -> str:
    """Where a sidecar's /metrics listens, from the setting it reads itself (``0``: none)."""
    value = os.environ.get(setting, "").strip() or str(default)
    if value == "0":
        return f"no /metrics ({setting}=0)"
    return f"http://127.0.0.1:{value}/metrics"
