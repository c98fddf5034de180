"""The FastAPI app the plugin mounts at ``/klinepipe`` in Airflow's api-server.

| route | auth | what |
|---|---|---|
| ``GET /klinepipe/trading`` | Airflow login (else redirect to the login page) | the Trading page (HTML) |
| ``GET /klinepipe/api/overview`` | Airflow login | series freshness, positions, open orders, kill switches, equity, precision, operator events |
| ``GET /klinepipe/api/candles?symbol=&interval=&limit=&mode=`` | Airflow login | candles of one series plus its sleeves' trades |
| ``POST /klinepipe/api/kill-switch`` ``{mode, state, reason}`` | Airflow login with permission to change DAGs | trip (HALTED / REDUCING) or resume (ACTIVE) the trader's kill switch |
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
from typing import Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from klinepipe.errors import KlinepipeConfigError
from klinepipe.outage import Outage, one_line
from klinepipe.quality import configured_streams
from klinepipe.settings import lenient_settings
from klinepipe_trading import actions, auth, etl_metrics, queries

STATIC = Path(__file__).resolve().parent / "static"
MODES = "^(paper|testnet|demo|live)$"
log = logging.getLogger(__name__)


@cache
def _engine():
    from klinepipe.airflow_conn import database_url
    from klinepipe.db import make_engine

    return make_engine(database_url(), pool_size=2, max_overflow=2, pool_recycle=600)


class KillSwitchChange(BaseModel):
    mode: str = Field(pattern=MODES)
    state: Literal["HALTED", "REDUCING", "ACTIVE"]
    reason: str = Field(min_length=1, max_length=300)


def _same_origin_json(request: Request) -> None:
    """A state change comes from the page itself: a JSON body (never a cross-site form) and, when the browser
    says where it comes from, this origin."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "send the change as application/json")
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "cross-origin request refused")


class Database:
    """The page's way to PostgreSQL: a connection, or ``HTTPException(503)`` saying in one line why not."""

    def __init__(self, engine_factory) -> None:
        self._engine_factory = engine_factory
        self.outage = Outage("trading page: postgres", log)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        try:
            engine = self._engine_factory()
        except (KlinepipeConfigError, sa.exc.ArgumentError, ValueError) as exc:  # no or a garbled database setting
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

    @app.get("/api/overview")
    async def overview(request: Request, mode: str | None = Query(None, pattern=MODES), user=Depends(auth.current_user)):
        try:
            await auth.operator(request)
            can_act = True
        except HTTPException:
            can_act = False
        with db.connect() as conn:
            settings = lenient_settings(log)  # TRADER_MODE: the mode shown before the trader recorded anything
            data = queries.overview(conn, mode, configured_streams(settings.streaming_subscriptions), settings.trader_mode)
            data["operator_events"] = actions.recent_operator_events(conn, data["mode"])
        return {**data, "user": {"name": auth.user_name(user), "can_act": can_act},
                "now": int(datetime.now(timezone.utc).timestamp())}

    @app.post("/api/kill-switch")
    def kill_switch(change: KillSwitchChange, request: Request, user=Depends(auth.operator)):
        _same_origin_json(request)
        try:
            with db.connect() as conn, conn.begin():
                done = actions.set_kill_switch(conn, change.mode, change.state, change.reason, auth.user_name(user))
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        log.warning("klinepipe trading page: kill switch %s (%s) by %s: %s", done["state"], done["mode"],
                    auth.user_name(user), done["reason"])
        return done

    @app.get("/api/candles", dependencies=[Depends(auth.current_user)])
    def candles(symbol: str = Query(..., pattern="^[A-Z0-9]{2,20}$"), interval: str = Query(..., pattern="^[0-9]{1,2}[smhdwM]$"),
                limit: int = Query(500, ge=1, le=queries.MAX_CANDLES), mode: str | None = Query(None, pattern=MODES)):
        with db.connect() as conn:
            rows = queries.candles(conn, symbol, interval, limit)
            since = datetime.fromtimestamp(rows[0]["time"], timezone.utc) if rows else None
            return {"symbol": symbol, "interval": interval, "candles": rows,
                    "trades": queries.trades(conn, symbol, interval, since, mode),
                    "precision": queries.precision(conn, [symbol])[symbol]}

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
