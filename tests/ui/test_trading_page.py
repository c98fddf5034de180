"""The Trading page in Airflow's UI, in headless Chromium against a real ``airflow api-server`` with the repo's
plugins folder: it is not reachable without Airflow's login; after the login the UI itself does (POST
/auth/token, the ``_token`` cookie) it shows the seeded candles, the trades of the chart's own sleeves, positions
and prices to each symbol's tick and step, the open order, equity, kill switch and freshness (red only for a
stream that stopped, never for imported history); the kill switch is tripped and resumed from the page, and a
real trader on the same database obeys it; read-only roles are refused. The ETL metrics endpoint answers in
Prometheus text. Saves screenshots (``KLINEPIPE_UPDATE_DOCS=1`` copies them to ``docs/``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from devstack.embedded import free_port
from tests.conftest import ROOT, airflow_connections
from tests.helpers import expected_sma_cross_orders, sample_rows, seed_features
from tests.traders import BuyFirstSellLast, crash_rows, kill_switch_trader
from tests.ui.chromium import Chromium

pytestmark = pytest.mark.integration

SYMBOL, INTERVAL, SLEEVE, SLEEVE_1M = "BTCUSDT", "1h", "BTCUSDT:1h:sma_cross", "BTCUSDT:1m:sma_cross"
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
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,watcher:viewer", "KLINEPIPE_METRICS_TOKEN": "scrape-secret",
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
        passwords = json.loads((Path(airflow_env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated").read_text())
        _PASSWORDS.update(passwords)
        yield base, passwords["admin"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_PASSWORDS: dict[str, str] = {}


def _status(url: str) -> int:
    try:
        return _get(url)[0]
    except OSError:
        return 0


def _login(base: str, password: str, username: str = "admin") -> str:
    body = json.dumps({"username": username, "password": password}).encode()
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
        # A 1m sleeve of the same symbol traded meanwhile: its fills belong on the 1m chart, not on this 1h one.
        c.execute(sa.text("INSERT INTO trading.sleeves (sleeve, symbol, interval, strategy) VALUES (:s, :y, '1m', 'sma_cross')"),
                  {"s": SLEEVE_1M, "y": SYMBOL})
        for n in range(0, 40, 2):
            coid, side = f"kp-test-1m-{n}", ("BUY", "SELL")[n // 2 % 2]
            c.execute(sa.text("""INSERT INTO trading.orders (client_order_id, sleeve, mode, symbol, side, type, quantity, status,
                                 signal_open_time, executed_qty) VALUES (:id, :sl, 'paper', :sy, :side, 'MARKET', 0.01, 'FILLED', :t, 0.01)"""),
                      {"id": coid, "sl": SLEEVE_1M, "sy": SYMBOL, "side": side, "t": candles[100]["ot"] + timedelta(minutes=n)})
            c.execute(sa.text("""INSERT INTO trading.fills (client_order_id, trade_id, symbol, side, quantity, price, fee, fee_asset,
                                 filled_at) VALUES (:id, '1', :sy, :side, 0.01, :p, 0, 'USDT', :t)"""),
                      {"id": coid, "sy": SYMBOL, "side": side, "p": Decimal(candles[100]["c"]), "t": candles[100]["ot"] + timedelta(minutes=n + 1)})
        # ALGOUSDT at ~0.25 (tick 0.0001): the BTCUSDT candles scaled down, stored as Binance pads them (8 decimals)
        scale = Decimal("0.25") / Decimal(rows[0][1])
        algo = [{**k, "s": "ALGOUSDT", **{f: str((Decimal(k[f]) * scale).quantize(Decimal("0.0001"))) + "0000" for f in "ohlc"},
                 "v": str((Decimal(k["v"]) * 10000).quantize(Decimal(1))) + ".00000000"} for k in candles]
        c.execute(sa.text("""INSERT INTO market.candles (symbol, interval, open_time, close_time, open, high, low, close, volume,
                             is_closed, event_time, source) VALUES (:s, :i, :ot, :ct, :o, :h, :l, :c, :v, true, :ct, 'file')"""), algo)
        c.execute(sa.text("INSERT INTO trading.sleeves (sleeve, symbol, interval, strategy) VALUES ('ALGOUSDT:1h:sma_cross', 'ALGOUSDT', '1h', 'sma_cross')"))
        c.execute(sa.text("INSERT INTO trading.positions (sleeve, symbol, quantity, avg_price) VALUES ('ALGOUSDT:1h:sma_cross', 'ALGOUSDT', 3996, :p)"),
                  {"p": Decimal(algo[-3]["c"])})
        # ETHUSDT 1m arrived live (ingested a second after each close) and stopped 40 minutes ago: the one red row
        c.execute(sa.text("""INSERT INTO market.candles (symbol, interval, open_time, close_time, open, high, low, close, volume,
                             is_closed, event_time, source, ingested_at)
                             SELECT 'ETHUSDT', '1m', t, t + interval '59.999 seconds', 1800, 1801, 1799, 1800.5, 3.2, true,
                                    t + interval '1 minute', 'binance', t + interval '61 seconds'
                             FROM generate_series(date_trunc('minute', now()) - interval '70 minutes',
                                                  date_trunc('minute', now()) - interval '41 minutes', interval '1 minute') t"""))
        c.execute(sa.text("INSERT INTO trading.trader_state (key, value) VALUES ('kill_switch:paper', :v)"),
                  {"v": json.dumps({"state": "REDUCING", "reason": "daily loss 5%", "by": "risk"})})
        c.execute(sa.text("INSERT INTO etl.dead_letters (topic, partition, \"offset\", error) VALUES ('binance.klines', 0, 7, 'bad json')"))
        c.execute(sa.text("INSERT INTO etl.kafka_offsets (consumer, topic, partition, next_offset) VALUES ('ingest', 'binance.klines', 0, 241)"))
    return {"candles": len(candles), "trades": len(TRADE_BARS), "position": held, "algo_avg": Decimal(algo[-3]["c"])}


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
        _pick_series(browser, "BTCUSDT:1h", "document.querySelectorAll('#trades tbody td.empty').length === 0")
        page = browser.evaluate(PAGE_STATE)
        time.sleep(0.5)  # let the charts paint before the picture (not an assertion)
        shot = browser.screenshot(tmp_path / "trading-page.png")

        _pick_series(browser, "ALGOUSDT:1h", "document.querySelector('#trades tbody td.empty') !== null")
        time.sleep(0.5)
        algo_shot = browser.screenshot(tmp_path / "trading-page-algousdt.png")

        browser.navigate(f"{base}/plugin/trading")  # the "Trading" entry of Airflow's own navigation
        iframe = browser.wait_for("(() => { const f = document.querySelector('iframe'); return f && f.getAttribute('src'); })()")
        browser.wait_for("(() => { const f = document.querySelector('iframe');"
                         " return f && f.contentDocument && f.contentDocument.body.dataset.ready === '1'; })()")
        time.sleep(0.5)
        in_ui = browser.screenshot(tmp_path / "trading-page-in-airflow.png")
    finally:
        browser.close()

    assert page["candles"] == str(seeded["candles"])
    assert page["trades"] == str(seeded["trades"])  # the 1m sleeve's 20 fills are not on the 1h chart
    assert [r.split("\t")[1] for r in page["trade_rows"]] == [SLEEVE] * 5
    assert page["canvases"] > 0
    assert page["kill"] == "REDUCING" and page["mode"] == "mode paper"
    positions = dict((r.split("\t")[0], r.split("\t")) for r in page["positions"])
    assert set(positions) == {SLEEVE, "ALGOUSDT:1h:sma_cross"} and positions[SLEEVE][2] == "0.10000"  # BTC's step: 5 decimals
    assert positions["ALGOUSDT:1h:sma_cross"][3] == f"{seeded['algo_avg']:.4f}"  # ALGO's tick: 4 decimals, not 0.25
    assert positions["ALGOUSDT:1h:sma_cross"][2] == "3,996"
    assert len(page["orders"]) == 1 and "kp-test-open" in page["orders"][0] and "NEW" in page["orders"][0]
    freshness = {r.split("\t")[0]: r.split("\t") for r in page["freshness"]}
    assert {k: (v[1], v[3]) for k, v in freshness.items()} == {
        "ALGOUSDT 1h": ("240", "history"), "BTCUSDT 1h": ("240", "history"), "ETHUSDT 1m": ("30", "streamed")}
    assert page["red_freshness"] == ["ETHUSDT 1m"]  # years-old imported history is not an alarm; a stopped stream is
    assert page["pnl"].startswith("equity ")
    assert iframe.endswith("/klinepipe/trading")
    assert shot.stat().st_size > 20_000 and in_ui.stat().st_size > 20_000 and algo_shot.stat().st_size > 20_000
    if os.environ.get("KLINEPIPE_UPDATE_DOCS") == "1":  # refresh the README's pictures on request only
        shutil.copy(shot, ROOT / "docs" / "trading-page.png")
        shutil.copy(algo_shot, ROOT / "docs" / "trading-page-algousdt.png")
        shutil.copy(in_ui, ROOT / "docs" / "trading-page-in-airflow.png")


def _pick_series(browser, key: str, done: str) -> None:
    """Choose a series in the page's list, as a user does, and wait until its chart and trades are drawn."""
    browser.evaluate(f"(() => {{ const s = document.getElementById('series'); s.value = '{key}';"
                     " s.dispatchEvent(new Event('change')); })()")
    browser.wait_for(f"document.getElementById('series').value === '{key}' && {done}")


PAGE_STATE = """({candles: document.body.dataset.candles, trades: document.body.dataset.trades,
    kill: document.getElementById('kill').dataset.state, mode: document.getElementById('mode').textContent,
    positions: [...document.querySelectorAll('#positions tbody tr')].map(r => r.innerText),
    orders: [...document.querySelectorAll('#orders tbody tr')].map(r => r.innerText),
    freshness: [...document.querySelectorAll('#freshness tbody tr')].map(r => r.innerText),
    red_freshness: [...new Set([...document.querySelectorAll('#freshness td.neg')].map(td => td.parentElement.cells[0].innerText))],
    trade_rows: [...document.querySelectorAll('#trades tbody tr')].map(r => r.innerText),
    pnl: document.getElementById('pnl').textContent,
    canvases: document.querySelectorAll('#price-chart canvas').length})"""


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


def _post(url: str, body: dict, token: str, content_type: str = "application/json", origin: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": content_type, "Authorization": f"Bearer {token}"})
    if origin:
        req.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _kill_state(engine) -> dict | None:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT value FROM trading.trader_state WHERE key = 'kill_switch:paper'")).scalar()


def test_the_kill_switch_is_tripped_and_resumed_from_the_page_and_the_trader_obeys(api_server, db, database_url, tmp_path):
    """Click "Halt trading" with a reason: trading.trader_state and trading.events say so with the user's name, and
    a trader (the real one, on the same database) places no entry; click "Resume": it trades again."""
    base, password = api_server
    rows = crash_rows(80)
    seed_features(db, rows[:40])  # BTCUSDT 1m candles and features: a BUY-always strategy would enter at once
    browser = Chromium(tmp_path / "profile")
    try:
        browser.set_cookie(base, "_token", _login(base, password))
        browser.navigate(f"{base}/klinepipe/trading")
        browser.wait_for("document.body.dataset.ready === '1'")
        before = browser.evaluate("document.getElementById('kill').dataset.state")
        browser.evaluate("document.getElementById('kill-halt').click()")  # no reason yet: refused on the page
        unreasoned = browser.wait_for("document.getElementById('kill-result').textContent")
        browser.evaluate("document.getElementById('kill-reason').value = 'exchange incident drill'")
        browser.evaluate("document.getElementById('kill-halt').click()")
        browser.wait_for("document.getElementById('kill').dataset.state === 'HALTED'")
        halted_text = browser.evaluate("document.getElementById('kill-result').textContent")
        halted_events = browser.evaluate("[...document.querySelectorAll('#kill-events tbody tr')].map(r => r.innerText)")
        time.sleep(0.5)  # let the charts paint before the picture (not an assertion)
        shot = browser.screenshot(tmp_path / "trading-page-kill-switch.png")
        halted_state = _kill_state(db)

        trader = kill_switch_trader(database_url, [BuyFirstSellLast(sell_below=0)])
        trader.step()  # the trader reads the page's kill switch before deciding
        with db.connect() as c:
            orders_halted = c.execute(sa.text("SELECT count(*) FROM trading.orders")).scalar()
            blocks = c.execute(sa.text("SELECT detail FROM trading.events WHERE kind = 'risk_block' AND rule = 'kill_switch'")).scalars().all()

        browser.evaluate("document.getElementById('kill-reason').value = 'drill over'")
        browser.evaluate("document.getElementById('kill-resume').click()")
        browser.wait_for("document.getElementById('kill').dataset.state === 'ACTIVE'")
        seed_features(db, rows[40:50])
        kill_switch_trader(database_url, [BuyFirstSellLast(sell_below=0)]).step()
        with db.connect() as c:
            orders_resumed = c.execute(sa.text("SELECT side FROM trading.orders")).scalars().all()
            events = c.execute(sa.text("SELECT kind, detail FROM trading.events WHERE kind = 'kill_switch' ORDER BY id")).fetchall()
    finally:
        browser.close()

    assert before == "ACTIVE" and "give a reason" in unreasoned
    assert halted_state == {"state": "HALTED", "reason": "exchange incident drill", "by": "admin (Trading page)"}
    assert "HALTED (paper) by admin" in halted_text and "HALTED by admin (Trading page): exchange incident drill" in halted_events[0]
    assert orders_halted == 0 and blocks and all("HALTED" in b for b in blocks)
    assert orders_resumed == ["BUY"]
    assert [e.detail for e in events] == ["HALTED by admin (Trading page): exchange incident drill",
                                         "ACTIVE by admin (Trading page): drill over"]
    assert shot.stat().st_size > 20_000
    if os.environ.get("KLINEPIPE_UPDATE_DOCS") == "1":
        shutil.copy(shot, ROOT / "docs" / "trading-page-kill-switch.png")


def test_the_kill_switch_refuses_read_only_roles_foreign_origins_and_forms(api_server, db, tmp_path):
    base, password = api_server
    viewer = _login(base, _PASSWORDS["watcher"], "watcher")
    admin = _login(base, password)
    change = {"mode": "paper", "state": "HALTED", "reason": "test"}

    as_viewer = _post(f"{base}/klinepipe/api/kill-switch", change, viewer)
    as_form = _post(f"{base}/klinepipe/api/kill-switch", change, admin, content_type="application/x-www-form-urlencoded")
    foreign = _post(f"{base}/klinepipe/api/kill-switch", change, admin, origin="https://evil.example")
    anonymous = _get(f"{base}/klinepipe/api/overview")[0]
    blank = _post(f"{base}/klinepipe/api/kill-switch", {**change, "reason": "   "}, admin)
    browser = Chromium(tmp_path / "profile")
    try:
        browser.set_cookie(base, "_token", viewer)
        browser.navigate(f"{base}/klinepipe/trading")
        browser.wait_for("document.body.dataset.ready === '1'")
        page = browser.evaluate("""({disabled: [...document.querySelectorAll('#kill-form button')].every(b => b.disabled),
            note: document.getElementById('kill-result').textContent, user: document.getElementById('user').textContent})""")
    finally:
        browser.close()

    assert as_viewer[0] == 403 and "read-only" in as_viewer[1]["detail"]
    assert as_form[0] in (415, 422) and foreign[0] == 403 and anonymous == 401 and blank[0] == 422
    assert _kill_state(db) is None  # nothing changed
    with db.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM trading.events")).scalar() == 0
    assert page["disabled"] and "read-only" in page["note"] and page["user"] == "watcher · read-only"


def _start_trader(database_url: str) -> subprocess.Popen:
    """``python -m trader run`` in paper mode on the test database (old sample candles: staleness rule off)."""
    env = {**os.environ, "DATABASE_URL": database_url, "TRADER_MODE": "paper", "TRADER_SLEEVES": "BTCUSDT:1m:sma_cross:1000",
           "TRADER_STALE_INTERVALS": "0", "TRADER_POLL_INTERVAL": "0.2", "TRADER_METRICS_PORT": "0"}
    return subprocess.Popen([sys.executable, "-m", "trader", "run"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _decided_up_to(engine, open_time_ms: int, proc: subprocess.Popen) -> None:
    """Wait until the running trader decided the candle opened at ``open_time_ms`` (or died)."""
    deadline = time.monotonic() + 90
    want = datetime.fromtimestamp(open_time_ms / 1000, timezone.utc)
    while True:
        with engine.connect() as c:
            last = c.execute(sa.text("SELECT max(last_open_time) FROM trading.sleeves")).scalar()
        if last is not None and last >= want:
            return
        assert proc.poll() is None, proc.communicate(timeout=10)[0][-3000:]
        assert time.monotonic() < deadline, f"the trader did not decide {want} (decided up to {last})"
        time.sleep(0.2)


def test_a_running_trader_obeys_the_kill_switch_clicked_on_the_page(api_server, db, database_url, tmp_path):
    """``python -m trader run`` keeps running while the operator halts it from the page: the next crossover's
    BUY is blocked (a risk_block naming the kill switch), and after "Resume" the following crossover trades."""
    base, password = api_server
    rows = sample_rows(600)
    crossings = expected_sma_cross_orders([Decimal(r[4]) for r in rows])
    (first, side1), (_, _), (third, side3) = crossings[:3]
    assert side1 == side3 == "BUY"
    seed_features(db, rows[:first])  # up to the bar before the first crossover
    trader = _start_trader(database_url)
    browser = Chromium(tmp_path / "profile")
    try:
        _decided_up_to(db, int(rows[first - 1][0]), trader)
        browser.set_cookie(base, "_token", _login(base, password))
        browser.navigate(f"{base}/klinepipe/trading")
        browser.wait_for("document.body.dataset.ready === '1'")
        browser.evaluate("document.getElementById('kill-reason').value = 'halt the running trader'")
        browser.evaluate("document.getElementById('kill-halt').click()")
        browser.wait_for("document.getElementById('kill').dataset.state === 'HALTED'")

        seed_features(db, rows[first:third])  # the first crossover (BUY) arrives while HALTED
        _decided_up_to(db, int(rows[third - 1][0]), trader)
        with db.connect() as c:
            halted_orders = c.execute(sa.text("SELECT count(*) FROM trading.orders")).scalar()
            blocked = c.execute(sa.text("SELECT open_time, detail FROM trading.events WHERE kind = 'risk_block'"
                                        " AND rule = 'kill_switch'")).fetchall()

        browser.evaluate("document.getElementById('kill-reason').value = 'carry on'")
        browser.evaluate("document.getElementById('kill-resume').click()")
        browser.wait_for("document.getElementById('kill').dataset.state === 'ACTIVE'")
        seed_features(db, rows[third:third + 1])  # the next crossover (BUY), after the resume
        _decided_up_to(db, int(rows[third][0]), trader)
        with db.connect() as c:
            resumed_orders = c.execute(sa.text("SELECT side, signal_open_time FROM trading.orders")).fetchall()
        alive = trader.poll() is None
    finally:
        browser.close()
        trader.send_signal(signal.SIGTERM)
        out, _ = trader.communicate(timeout=30)

    assert alive, out[-3000:]
    assert halted_orders == 0
    assert [int(b.open_time.timestamp() * 1000) for b in blocked] == [int(rows[first][0])], out[-3000:]
    assert "HALTED" in blocked[0].detail
    assert [(o.side, int(o.signal_open_time.timestamp() * 1000)) for o in resumed_orders] == [("BUY", int(rows[third][0]))]
