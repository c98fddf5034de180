"""Every documented trigger form, walked in Airflow's own UI as a user does: headless Chromium against a real
api-server, scheduler and dag-processor (LocalExecutor) on the repo's dags/. Each test opens the DAG, presses
*Trigger*, fills the form by typing (the date fields through the UI's date-and-time picker), presses the
form's *Trigger*, waits for the run and checks what it did in PostgreSQL (or the backtest's report).

Before the forms were fixed, ``backfill_klines`` showed ``files`` as a required field, so with symbols,
interval, start and end filled the Trigger button stayed disabled ("This field is required"), and the same for
``backtest_strategy``'s empty ``start``/``end``. Screenshots of the filled forms: ``docs/trigger-*.png``
(refreshed with ``KLINEPIPE_UPDATE_DOCS=1``)."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, airflow_connections
from tests.fake_binance import FakeBinance
from tests.helpers import sample_rows, seed_candles, write_csv
from tests.ui.airflow_stack import start_airflow
from tests.ui.chromium import Chromium
from trader.backtest.dag_request import safe_dir_name
from trader.backtest.engine import FillModel
from trader.backtest.service import BacktestRequest, execute

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
DAGS = {"backfill_klines", "import_kline_files", "backtest_strategy"}
UTC = timezone.utc

# The form row (label + input) of param ``name`` in the open trigger dialog: its label is the param's title
# ("Start (UTC)") or, without one, the name itself; both start with the name, whatever the case.
FIELD = ("(name => [...[...document.querySelectorAll('[role=dialog]')].at(-1).querySelectorAll('[data-part=root][role=group]')]"
         ".find(g => (g.querySelector('label')?.innerText || '').trim().toLowerCase().startsWith(name)))")
OPEN_PICKER = "document.querySelector('[data-part=content][data-state=open] input[placeholder=\"{}\"]')"
SUBMIT = "document.querySelector('[data-testid=trigger-dag-submit]')"


@pytest.fixture(scope="module")
def airflow(airflow_env, database_url, tmp_path_factory):
    """The Airflow processes, with the fake Binance (real BTCUSDT 1m candles) as ``BINANCE_REST_URL``."""
    tmp = tmp_path_factory.mktemp("trigger_forms")
    with FakeBinance() as fake:
        fake.add_symbol("BTCUSDT", "BTC", "USDT")
        fake.seed_klines("BTCUSDT", "1m", sample_rows(600))
        env = {**airflow_env, **airflow_connections(database_url, "127.0.0.1:1"), "BINANCE_REST_URL": fake.url,
               "KLINEPIPE_REPORTS_DIR": str(tmp / "reports")}
        stack = start_airflow(env, tmp / "logs")
        try:
            stack.wait_for_dags(DAGS)
            yield stack, tmp
        finally:
            stack.stop()


class Form:
    """The trigger dialog of one DAG, driven with real focus, key and text input events."""

    def __init__(self, browser: Chromium, base: str, dag_id: str) -> None:
        self.b = browser
        browser.navigate(f"{base}/dags/{dag_id}")
        browser.wait_for("[...document.querySelectorAll('button')].some(x => x.innerText.trim() === 'Trigger')")
        browser.evaluate("[...document.querySelectorAll('button')].find(x => x.innerText.trim() === 'Trigger').click(), 1")
        browser.wait_for(f"!!{SUBMIT} && !!{FIELD}('{'files' if dag_id == 'import_kline_files' else 'interval'}')")

    def _type(self, element_js: str, text: str) -> None:
        self.b.evaluate(f"(el => (el.focus(), el.select && el.select(), 1))({element_js})")
        self.b.send("Input.insertText", text=text)

    def type(self, name: str, text: str) -> None:
        self._type(f"{FIELD}('{name}').querySelector('textarea, input')", text)

    def pick_datetime(self, name: str, when: datetime) -> None:
        """Open the field's date-and-time picker (it says UTC), type the date and the time, close it (Escape)."""
        self.b.evaluate(f"{FIELD}('{name}').querySelector('[data-testid=datetime-input]').click(), 1")
        self.b.wait_for(f"!!{OPEN_PICKER.format('YYYY/MM/DD')}")
        self._type(OPEN_PICKER.format("YYYY/MM/DD"), when.strftime("%Y/%m/%d"))
        self.b.wait_for(f"!!{OPEN_PICKER.format('HH:mm')}")
        self._type(OPEN_PICKER.format("HH:mm"), when.strftime("%H:%M"))
        for kind in ("keyDown", "keyUp"):
            self.b.send("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)
        shown = when.strftime("%b %d, %Y %H:%M")
        self.b.wait_for(f"{FIELD}('{name}').innerText.includes('{shown}')", timeout=10)

    def text(self) -> str:
        return self.b.evaluate("[...document.querySelectorAll('[role=dialog]')].at(-1).innerText")

    def can_submit(self) -> bool:
        return self.b.evaluate(f"!{SUBMIT}.disabled")

    def submit(self) -> None:
        assert self.can_submit(), self.text()
        self.b.evaluate(f"{SUBMIT}.click(), 1")


def _browser(tmp_path: Path, stack, height: int = 1400) -> Chromium:
    browser = Chromium(tmp_path / "profile", height=height)
    browser.set_cookie(stack.base, "_token", stack.token())  # Airflow's login, as in test_trading_page
    return browser


def _shot(browser: Chromium, tmp_path: Path, name: str) -> Path:
    time.sleep(0.5)  # let the dialog settle before the picture (not an assertion)
    shot = browser.screenshot(tmp_path / name)
    if os.environ.get("KLINEPIPE_UPDATE_DOCS") == "1":  # refresh the README's pictures on request only
        shutil.copy(shot, ROOT / "docs" / name)
    return shot


def _rows(engine, sql: str):
    with engine.connect() as c:
        return c.execute(sa.text(sql)).one()


def test_a_history_load_is_triggered_from_the_form_and_loads_exactly_the_range(airflow, engine, tmp_path):
    stack, _ = airflow
    browser = _browser(tmp_path, stack)
    try:
        form = Form(browser, stack.base, "backfill_klines")
        form.type("symbols", "BTCUSDT")
        form.pick_datetime("start", datetime(2024, 3, 1, 0, 0, tzinfo=UTC))
        form.pick_datetime("end", datetime(2024, 3, 1, 5, 0, tzinfo=UTC))
        assert "This field is required" not in form.text()
        assert form.can_submit()
        assert browser.evaluate(f"!{FIELD}('files')")  # imports are the import_kline_files DAG's form
        shot = _shot(browser, tmp_path, "trigger-backfill.png")
        before = stack.run_ids("backfill_klines")
        form.submit()
        run = stack.wait_for_run("backfill_klines", before)
    finally:
        browser.close()

    assert run["state"] == "success", stack.tail("scheduler")
    assert run["conf"]["symbols"] == ["BTCUSDT"] and run["conf"]["interval"] == "1m"
    n, first, last, sources = _rows(engine, "SELECT count(*), min(open_time), max(open_time), array_agg(DISTINCT source)"
                                            " FROM market.candles WHERE symbol = 'BTCUSDT' AND interval = '1m' AND is_closed")
    assert (n, first, last) == (300, datetime(2024, 3, 1, 0, 0, tzinfo=UTC), datetime(2024, 3, 1, 4, 59, tzinfo=UTC))
    assert sources == ["backfill"]
    assert shot.stat().st_size > 20_000


def test_a_file_import_is_triggered_from_its_own_form(airflow, engine, tmp_path):
    stack, _ = airflow
    rows = sample_rows(48, "BTCUSDT-30m.csv")
    path = write_csv(tmp_path / "BTCUSDT-30m-2021-10.csv", rows)
    browser = _browser(tmp_path, stack, height=900)
    try:
        form = Form(browser, stack.base, "import_kline_files")
        assert not form.can_submit()  # the one field that must be filled: the form says so
        form.type("files", str(tmp_path / "BTCUSDT-30m-*.csv"))
        assert form.can_submit()
        shot = _shot(browser, tmp_path, "trigger-import.png")
        before = stack.run_ids("import_kline_files")
        form.submit()
        run = stack.wait_for_run("import_kline_files", before)
    finally:
        browser.close()

    assert run["state"] == "success", stack.tail("scheduler")
    n, first, sources = _rows(engine, "SELECT count(*), min(open_time), array_agg(DISTINCT source) FROM market.candles"
                                      " WHERE symbol = 'BTCUSDT' AND interval = '30m'")
    assert n == 48 and first == datetime.fromtimestamp(int(rows[0][0]) / 1000, UTC) and sources == ["file"]
    assert path.exists() and shot.stat().st_size > 10_000


def test_a_backtest_is_triggered_with_a_start_and_an_empty_end(airflow, engine, tmp_path):
    stack, tmp = airflow
    rows = sample_rows(1200)  # 2024-03-01 00:00 .. 19:59
    seed_candles(engine, rows)
    browser = _browser(tmp_path, stack, height=1700)
    try:
        form = Form(browser, stack.base, "backtest_strategy")
        assert "empty = to the last stored candle" in form.text()
        form.pick_datetime("start", datetime(2024, 3, 1, 2, 0, tzinfo=UTC))  # End stays empty
        assert "This field is required" not in form.text()
        shot = _shot(browser, tmp_path, "trigger-backtest.png")
        before = stack.run_ids("backtest_strategy")
        form.submit()
        run = stack.wait_for_run("backtest_strategy", before)
    finally:
        browser.close()

    assert run["state"] == "success", stack.tail("scheduler")
    assert run["conf"]["end"] is None and run["conf"]["strategy"] == "sma_cross"
    out = tmp / "reports" / safe_dir_name(run["dag_run_id"])
    summary = json.loads((out / "summary.json").read_text())
    expected = execute(BacktestRequest(out_dir=tmp_path / "csv", csv=write_csv(tmp_path / "BTCUSDT-1m.csv", rows[120:]),
                                       params={"fast": 10, "slow": 30}, html=False, png=False, model=FillModel(fee_bps=10.0)))
    assert summary["bars"] == 1080  # from 02:00 to the last stored candle
    assert summary["trades"] == expected["summary"]["trades"] > 0
    assert summary["final_equity"] == expected["summary"]["final_equity"]
    assert shot.stat().st_size > 20_000


def test_the_dag_list_shows_each_dags_description_on_its_name(airflow, tmp_path):
    stack, _ = airflow
    served = {d["dag_id"]: d["description"] for d in stack.api("/dags?limit=100")["dags"]}
    browser = _browser(tmp_path, stack, height=900)
    try:
        browser.navigate(f"{stack.base}/dags?search=backfill_klines")
        link = browser.wait_for("(() => { const a = [...document.querySelectorAll('[data-testid=dag-id]')]"
                                ".find(a => a.innerText.trim() === 'backfill_klines'); if (!a) return null;"
                                " const r = a.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=link[0], y=link[1])
        browser.wait_for(f"document.body.innerText.includes({json.dumps(served['backfill_klines'])})")
        shot = _shot(browser, tmp_path, "dag-list-description.png")
    finally:
        browser.close()

    assert all(served[d] for d in DAGS | {"ingest_klines", "compute_features", "data_quality"})
    assert shot.stat().st_size > 10_000
