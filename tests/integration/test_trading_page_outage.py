"""Drill: the Trading page's API over the real embedded PostgreSQL stopped for a drill's outage
(``KLINEPIPE_DRILL_OUTAGE_S``: 20 s; the issue's drill is 60 s) and started again at the same address. While it is down the API answers 503 with a one-line reason and /metrics says the database is down; the
outage is logged once and its end once; afterwards the same app (same pooled engine) answers 200 again.
(Airflow's login is a seam here: the test app's ``current_user`` dependency lets the request in.)"""

from __future__ import annotations

import logging
import time

import pytest
from fastapi.testclient import TestClient

from klinepipe.db import make_engine
from klinepipe.errors import KlinepipeConfigError
from klinepipe_trading import auth
from klinepipe_trading.app import create_app
from tests.outage_drills import OUTAGE_S, Lines, StoppablePostgres

pytestmark = pytest.mark.integration


def _client(engine_factory) -> TestClient:
    app = create_app(engine_factory)
    app.dependency_overrides[auth.current_user] = lambda: None
    app.dependency_overrides[auth.metrics_reader] = lambda: None
    return TestClient(app)


def test_the_page_answers_503_while_postgres_is_down_and_recovers_by_itself(tmp_path):
    pg = StoppablePostgres(tmp_path / "pg")
    seen = Lines()
    logger = logging.getLogger("klinepipe_trading.app")
    logger.addHandler(seen)
    logger.setLevel(logging.INFO)
    try:
        engine = make_engine(pg.migrated_database("page_drill"), pool_size=2, max_overflow=2)
        client = _client(lambda: engine)
        before = client.get("/api/overview")
        pg.stop()
        during, metrics_during = [], []
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline:  # the page polls every few seconds; so do we
            during.append(client.get("/api/overview"))
            metrics_during.append(client.get("/metrics").text)
            time.sleep(5)
        pg.start()
        after = client.get("/api/overview")
        metrics_after = client.get("/metrics").text
        engine.dispose()
    finally:
        logger.removeHandler(seen)
        pg.close()

    assert before.status_code == 200
    assert {r.status_code for r in during} == {503}
    detail = during[0].json()["detail"]
    assert "unreachable" in detail and "\n" not in detail and "Traceback" not in detail
    assert during[0].headers["retry-after"] == "5"
    assert all("klinepipe_etl_metrics_up 0.0" in m for m in metrics_during)
    assert after.status_code == 200 and after.json()["mode"] == "paper"
    assert "klinepipe_etl_metrics_up 1.0" in metrics_after
    assert sum("postgres unreachable" in line for line in seen.lines) == 1, seen.lines
    assert sum("postgres is back after" in line for line in seen.lines) == 1, seen.lines


@pytest.mark.parametrize("error", [KlinepipeConfigError("no database: set the Airflow connection 'klinepipe_db' or DATABASE_URL"),
                                   ValueError("not a URL")])
def test_a_missing_or_garbled_database_setting_is_a_503_naming_it(error):
    def factory():
        if isinstance(error, ValueError):
            return make_engine("postgresql://user@host:notaport/db")  # what a garbled DATABASE_URL gives
        raise error

    client = _client(factory)
    response = client.get("/api/overview")

    assert response.status_code == 503
    assert "not configured" in response.json()["detail"]
