"""The FastAPI app the plugin mounts at ``/klinepipe`` in Airflow's api-server.

| route | auth | what |
|---|---|---|
| ``GET /klinepipe/trading`` | Airflow login (else redirect to the login page) | the Trading page (HTML) |
| ``GET /klinepipe/api/overview`` | Airflow login | series freshness, positions, open orders, kill switches, equity |
| ``GET /klinepipe/api/candles?symbol=&interval=&limit=&mode=`` | Airflow login | candles of one series plus its trades |
| ``GET /klinepipe/metrics`` | Airflow login or ``$KLINEPIPE_METRICS_TOKEN`` | the ETL's Prometheus metrics |
| ``GET /klinepipe/static/...`` | none | the page's script, style and the vendored chart library |
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from klinepipe_trading import auth, etl_metrics, queries

STATIC = Path(__file__).resolve().parent / "static"
MODES = "^(paper|testnet|live)$"
log = logging.getLogger(__name__)


@cache
def _engine():
    from klinepipe.airflow_conn import database_url
    from klinepipe.db import make_engine

    return make_engine(database_url(), pool_size=2, max_overflow=2, pool_recycle=600)


def create_app(engine_factory=_engine) -> FastAPI:
    app = FastAPI(title="klinepipe trading", docs_url=None, redoc_url=None, openapi_url=None)
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
        with engine_factory().connect() as conn:
            return {**queries.overview(conn, mode), "now": int(datetime.now(timezone.utc).timestamp())}

    @app.get("/api/candles", dependencies=[Depends(auth.current_user)])
    def candles(symbol: str = Query(..., pattern="^[A-Z0-9]{2,20}$"), interval: str = Query(..., pattern="^[0-9]{1,2}[smhdwM]$"),
                limit: int = Query(500, ge=1, le=queries.MAX_CANDLES), mode: str | None = Query(None, pattern=MODES)):
        with engine_factory().connect() as conn:
            rows = queries.candles(conn, symbol, interval, limit)
            since = datetime.fromtimestamp(rows[0]["time"], timezone.utc) if rows else None
            return {"symbol": symbol, "interval": interval, "candles": rows, "trades": queries.trades(conn, symbol, since, mode)}

    @app.get("/metrics", dependencies=[Depends(auth.metrics_reader)])
    def metrics():
        try:
            with engine_factory().connect() as conn:
                snap = etl_metrics.read_snapshot(conn)
        except Exception:  # noqa: BLE001 - a scrape reports the database as down instead of failing
            log.exception("klinepipe metrics: database query failed")
            snap = None
        return Response(etl_metrics.render(snap), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
