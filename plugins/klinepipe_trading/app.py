"""The FastAPI app the plugin mounts at ``/klinepipe`` in Airflow's api-server.

| route | auth | what |
|---|---|---|
| ``GET /klinepipe/trading`` | Airflow login (else redirect to the login page) | the Trading page (HTML) |
| ``GET /klinepipe/api/overview`` | Airflow login | series freshness, positions, open orders, kill switches, equity |
| ``GET /klinepipe/api/candles?symbol=&interval=&limit=&mode=`` | Airflow login | candles of one series plus its trades |
| ``GET /klinepipe/metrics`` | Airflow login or ``$KLINEPIPE_METRICS_TOKEN`` | the ETL's Prometheus metrics |
| ``GET /klinepipe/static/...`` | none | the page's script, style and the vendored chart library |

While PostgreSQL is down (or the database setting is wrong) the API answers ``503`` with a one-line ``detail``
the page shows, and ``/metrics`` reports ``klinepipe_etl_metrics_up 0``; each outage is logged once when it
starts and once when it ends (``klinepipe.outage``), never a traceback per request. Pooled connections are
checked before use (``pool_pre_ping``), so the page answers again as soon as the database is back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from klinepipe.errors import ConfigError
from klinepipe.outage import Outage, one_line
from klinepipe_trading import auth, etl_metrics, queries

STATIC = Path(__file__).resolve().parent / "static"
MODES = "^(paper|testnet|live)$"
log = logging.getLogger(__name__)


@cache
def _engine():
    from klinepipe.airflow_conn import database_url
    from klinepipe.db import make_engine

    return make_engine(database_url(), pool_size=2, max_overflow=2, pool_recycle=600)


class Database:
    """The page's way to PostgreSQL: a connection, or ``HTTPException(503)`` saying in one line why not."""

    def __init__(self, engine_factory) -> None:
        self._engine_factory = engine_factory
        self.outage = Outage("trading page: postgres", log)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        try:
            engine = self._engine_factory()
        except (ConfigError, sa.exc.ArgumentError, ValueError) as exc:  # no or a garbled database setting
            self.outage.failed(exc)
            raise HTTPException(503, f"the pipeline database is not configured: {one_line(exc)}") from None
        try:
            with engine.connect() as conn:
                yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            self.outage.failed(exc)
            raise HTTPException(503, "the pipeline database (PostgreSQL) is unreachable; this page retries by itself "
                                     f"({one_line(exc.orig or exc, 120)})", headers={"Retry-After": "5"}) from None
        self.outage.ok()


def create_app(engine_factory=_engine) -> FastAPI:
    app = FastAPI(title="klinepipe trading", docs_url=None, redoc_url=None, openapi_url=None)
    db = Database(engine_factory)
    app.state.database = db
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/trading", response_class=HTMLResponse)
    async def trading_page(request: Request):
        try:
            await auth.current_user(request)
        except HTTPException:
            return RedirectResponse(auth.login_url(request), status_code=303)
        html = (STATIC / "trading.html").read_text()
        return HTMLResponse(html.replace("{{root}}", request.scope.get("root_path", "").rstrip("/")),
                            headers={"Cache-Control": "no-store"})

    @app.get("/api/overview", dependencies=[Depends(auth.current_user)])
    def overview(mode: str | None = Query(None, pattern=MODES)):
        with db.connect() as conn:
            return {**queries.overview(conn, mode), "now": int(datetime.now(timezone.utc).timestamp())}

    @app.get("/api/candles", dependencies=[Depends(auth.current_user)])
    def candles(symbol: str = Query(..., pattern="^[A-Z0-9]{2,20}$"), interval: str = Query(..., pattern="^[0-9]{1,2}[smhdwM]$"),
                limit: int = Query(500, ge=1, le=queries.MAX_CANDLES), mode: str | None = Query(None, pattern=MODES)):
        with db.connect() as conn:
            rows = queries.candles(conn, symbol, interval, limit)
            since = datetime.fromtimestamp(rows[0]["time"], timezone.utc) if rows else None
            return {"symbol": symbol, "interval": interval, "candles": rows, "trades": queries.trades(conn, symbol, since, mode)}

    @app.get("/metrics", dependencies=[Depends(auth.metrics_reader)])
    def metrics():
        try:
            with db.connect() as conn:
                snap = etl_metrics.read_snapshot(conn)
        except HTTPException:  # a scrape reports the database as down (logged once per outage) instead of failing
            snap = None
        except sa.exc.SQLAlchemyError as exc:  # e.g. not migrated yet
            log.error("klinepipe metrics: database query failed (%s)", one_line(exc))
            snap = None
        return Response(etl_metrics.render(snap), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
