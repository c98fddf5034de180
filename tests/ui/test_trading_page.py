"""The Trading page in Airflow's UI, in headless Chromium against a real ``airflow api-server`` with the repo's
plugins folder: it is not reachable without Airflow's login; after the login the UI itself does (POST
/auth/token, the ``_token`` cookie) it shows the seeded candles, trades, positions, open order, equity, kill
switch and freshness; the ETL metrics endpoint answers in Prometheus text. Saves screenshots."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from klinepipe.embedded import free_port
from tests.conftest import ROOT, airflow_connections
from tests.helpers import sample_rows
from tests.ui.chromium import Chromium

pytestmark = pytest.mark.integration

SYMBOL, INTERVAL, SLEEVE = "BTCUSDT", "1h", "BTCUSDT:1h:sma_cross"
N_CANDLES = 240
TRADE_BARS = [(60, "BUY"), (110, "SELL"), (150, "BUY"), (200, "SELL"), (230, "BUY")]  # the last one still open


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url: str, token: str | None = None, cookie: str | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if cookie:
        req.add_header("Cookie", f"_token={cookie}")
    try:
        with urllib.request.build_opener(_NoRedirect).open(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def api_server(airflow_env, database_url, tmp_path_factory):
    """``airflow api-server`` on a free port with the repo's plugins; yields (base URL, admin password)."""
    port = free_port()
    env = {**os.environ, **airflow_env, **airflow_connections(database_url, "127.0.0.1:1"),
           "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__WORKERS": "1",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin", "KLINEPIPE_METRICS_TOKEN": "scrape-secret",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    log = tmp_path_factory.mktemp("api_server") / "api-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "api-server", "-p", str(port), "-H", "127.0.0.1"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while _status(f"{base}/api/v2/version") != 200:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        passwords = Path(airflow_env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        yield base, json.loads(passwords.read_text())["admin"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _status(url: str) -> int:
    try:
        return _get(url)[0]
    except OSError:
        return 0


def _login(base: str, password: str) -> str:
    body = json.dumps({"username": "admin", "password": password}).encode()
    req = urllib.request.Request(f"{base}/auth/token", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)["access_token"]


def _seed(engine) -> dict:
    """Real BTCUSDT 1h candles, a paper sleeve that traded five times, equity marks, one open order."""
    rows = sample_rows(N_CANDLES, "BTCUSDT-1h.csv")
    ms = lambda v: datetime.fromtimestamp(int(v) / 1000, timezone.utc)  # noqa: E731
    candles = [{"s": SYMBOL, "i": INTERVAL, "ot": ms(r[0]), "ct": ms(r[6]), "o": r[1], "h": r[2], "l": r[3], "c": r[4], "v": r[5]}
               for r in rows]
    qty, cash, held, equity = Decimal("0.1"), Decimal(10000), Decimal(0), []
    with engine.begin() as c:
        c.execute(sa.text("""INSERT INTO market.candles (symbol, interval, open_time, close_time, open, high, low, close, volume,
                             is_closed, event_time, source) VALUES (:s, :i, :ot, :ct, :o, :h, :l, :c, :v, true, :ct, 'replay')"""),
                  candles)
        c.execute(sa.text("INSERT INTO trading.sleeves (sleeve, symbol, interval, strategy, last_open_time) VALUES (:s, :y, :i, 'sma_cross', :t)"),
                  {"s": SLEEVE, "y": SYMBOL, "i": INTERVAL, "t": candles[-1]["ot"]})
        trades = dict(TRADE_BARS)
        for n, k in enumerate(candles):
            if n in trades:
                side, price = trades[n], Decimal(k["o"])
                coid = f"kp-test-{n}"
                c.execute(sa.text("""INSERT INTO trading.orders (client_order_id, sleeve, mode, symbol, side, type, quantity, status,
                                     signal_open_time, executed_qty) VALUES (:id, :sl, 'paper', :sy, :side, 'MARKET', :q, 'FILLED', :t, :q)"""),
                          {"id": coid, "sl": SLEEVE, "sy": SYMBOL, "side": side, "q": qty, "t": candles[n - 1]["ot"]})
                c.execute(sa.text("""INSERT INTO trading.fills (client_order_id, trade_id, symbol, side, quantity, price, fee, fee_asset,
                                     filled_at) VALUES (:id, '1', :sy, :side, :q, :p, 0, 'USDT', :t)"""),
                          {"id": coid, "sy": SYMBOL, "side": side, "q": qty, "p": price, "t": k["ot"]})
                c.execute(sa.text("INSERT INTO trading.signals (sleeve, symbol, interval, open_time, strategy, action, reason)"
                                  " VALUES (:sl, :sy, :i, :t, 'sma_cross', :a, 'crossover')"),
                          {"sl": SLEEVE, "sy": SYMBOL, "i": INTERVAL, "t": candles[n - 1]["ot"], "a": side})
                cash += -qty * price if side == "BUY" else qty * price
                held += qty if side == "BUY" else -qty
                entry = price
            if n >= TRADE_BARS[0][0]:
                equity.append({"at": k["ot"], "e": cash + held * Decimal(k["c"])})
        c.execute(sa.text("INSERT INTO trading.equity (mode, at, equity) VALUES ('paper', :at, :e)"), equity)
        c.execute(sa.text("INSERT INTO trading.positions (sleeve, symbol, quantity, avg_price) VALUES (:s, :y, :q, :p)"),
                  {"s": SLEEVE, "y": SYMBOL, "q": held, "p": entry})
        c.execute(sa.text("""INSERT INTO trading.orders (client_order_id, sleeve, mode, symbol, side, type, quantity, price, status,
                             signal_open_time) VALUES ('kp-test-open', :sl, 'paper', :sy, 'SELL', 'LIMIT', :q, 99999, 'NEW', :t)"""),
                  {"sl": SLEEVE, "sy": SYMBOL, "q": qty, "t": candles[-1]["ot"]})
        c.execute(sa.text("INSERT INTO trading.trader_state (key, value) VALUES ('kill_switch:paper', :v)"),
                  {"v": json.dumps({"state": "REDUCING", "reason": "daily loss 5%", "by": "risk"})})
        c.execute(sa.text("INSERT INTO etl.dead_letters (topic, partition, \"offset\", error) VALUES ('binance.klines', 0, 7, 'bad json')"))
        c.execute(sa.text("INSERT INTO etl.kafka_offsets (consumer, topic, partition, next_offset) VALUES ('ingest', 'binance.klines', 0, 241)"))
    return {"candles": len(candles), "trades": len(TRADE_BARS), "position": held}


def test_trading_page_is_behind_login(api_server, engine):
    base, _ = api_server

    page, headers, _ = _get(f"{base}/klinepipe/trading")
    data, _, _ = _get(f"{base}/klinepipe/api/overview")
    forged, _, _ = _get(f"{base}/klinepipe/api/overview", cookie="not-a-jwt")
    metrics, _, _ = _get(f"{base}/klinepipe/metrics", token="wrong")

    assert page == 303 and headers["location"].startswith("/auth/login?next=")
    assert data == 401
    assert forged == 403
    assert metrics in (401, 403)


def test_trading_page_shows_seeded_candles_and_trades_in_chromium(api_server, engine, tmp_path):
    base, password = api_server
    seeded = _seed(engine)
    token = _login(base, password)  # what Airflow's login page does, then it keeps the token in the _token cookie
    browser = Chromium(tmp_path / "profile")
    try:
        browser.set_cookie(base, "_token", token)
        browser.navigate(f"{base}/klinepipe/trading")
        browser.wait_for("document.body.dataset.ready === '1'")
        page = browser.evaluate("""({candles: document.body.dataset.candles, trades: document.body.dataset.trades,
            kill: document.getElementById('kill').dataset.state, mode: document.getElementById('mode').textContent,
            positions: [...document.querySelectorAll('#positions tbody tr')].map(r => r.innerText),
            orders: [...document.querySelectorAll('#orders tbody tr')].map(r => r.innerText),
            freshness: [...document.querySelectorAll('#freshness tbody tr')].map(r => r.innerText),
            pnl: document.getElementById('pnl').textContent,
            canvases: document.querySelectorAll('#price-chart canvas').length})""")
        time.sleep(0.5)  # let the charts paint before the picture (not an assertion)
        shot = browser.screenshot(tmp_path / "trading-page.png")

        browser.navigate(f"{base}/plugin/trading")  # the "Trading" entry of Airflow's own navigation
        iframe = browser.wait_for("(() => { const f = document.querySelector('iframe'); return f && f.getAttribute('src'); })()")
        browser.wait_for("(() => { const f = document.querySelector('iframe');"
                         " return f && f.contentDocument && f.contentDocument.body.dataset.ready === '1'; })()")
        time.sleep(0.5)
        in_ui = browser.screenshot(tmp_path / "trading-page-in-airflow.png")
    finally:
        browser.close()

    assert page["candles"] == str(seeded["candles"])
    assert page["trades"] == str(seeded["trades"])
    assert page["canvases"] > 0
    assert page["kill"] == "REDUCING" and page["mode"] == "mode paper"
    assert len(page["positions"]) == 1 and page["positions"][0].startswith(SLEEVE) and "0.1" in page["positions"][0]
    assert len(page["orders"]) == 1 and "kp-test-open" in page["orders"][0] and "NEW" in page["orders"][0]
    assert len(page["freshness"]) == 1 and page["freshness"][0].startswith("BTCUSDT 1h\t240")
    assert page["pnl"].startswith("equity ")
    assert iframe.endswith("/klinepipe/trading")
    assert shot.stat().st_size > 20_000 and in_ui.stat().st_size > 20_000
    if os.environ.get("KLINEPIPE_UPDATE_DOCS") == "1":  # refresh the README's pictures on request only
        shutil.copy(shot, ROOT / "docs" / "trading-page.png")
        shutil.copy(in_ui, ROOT / "docs" / "trading-page-in-airflow.png")


def test_etl_metrics_endpoint_serves_prometheus_text(api_server, engine):
    base, _ = api_server
    _seed(engine)

    status, headers, body = _get(f"{base}/klinepipe/metrics", token="scrape-secret")

    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'klinepipe_candles{interval="1h",symbol="BTCUSDT"} 240.0' in text
    assert 'klinepipe_dead_letters{topic="binance.klines"} 1.0' in text
    assert 'klinepipe_kafka_next_offset{consumer="ingest",partition="0",topic="binance.klines"} 241.0' in text
    assert "klinepipe_etl_metrics_up 1.0" in text
