"""The progress seams behind the CLI's rich progress bars (backtests, history loads) and the backfill script's
status lines, against the bundled candles, real PostgreSQL and the local fake Binance."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from klinepipe.backfill import load_history
from tests.conftest import ROOT
from tests.helpers import SAMPLE, binance_client, sample_rows
from trader.backtest.service import BacktestRequest, execute

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ROWS = sample_rows(2500)
START, END = EPOCH + timedelta(milliseconds=int(ROWS[0][0])), EPOCH + timedelta(milliseconds=int(ROWS[-1][0]) + 60_000)


@pytest.fixture
def fake(fake_binance):
    return fake_binance(klines=ROWS)


def _last(events: list[tuple[str, int, int]]) -> dict[str, tuple[int, int]]:
    return {step: (done, total) for step, done, total in events}


def test_a_backtest_reports_every_step_to_the_progress_seam(tmp_path):
    events = []
    req = BacktestRequest(out_dir=tmp_path / "bt", csv=SAMPLE / "BTCUSDT-1h.csv", sweep={"fast": [5, 10, 20], "slow": [50]},
                          walk_forward=2, workers=1, html=False, png=False)

    execute(req, lambda *e: events.append(e))

    order = list(dict.fromkeys(step for step, _, _ in events))
    assert order == ["load candles", "features", "sweep", "walk-forward", "backtest", "report"]
    assert _last(events) == {"load candles": (1, 1), "features": (1, 1), "sweep": (3, 3), "walk-forward": (2, 2),
                             "backtest": (1, 1), "report": (1, 1)}
    assert [d for s, d, _ in events if s == "sweep"] == [1, 2, 3]


@pytest.mark.integration
def test_a_history_load_reports_candles_fetched_against_candles_expected(engine, fake):
    client = binance_client(fake)
    events = []

    load_history(engine, client, ["BTCUSDT"], "1m", START, END, progress=lambda *e: events.append(e))

    assert events == [("BTCUSDT 1m", 1000, 2500), ("BTCUSDT 1m", 2000, 2500), ("BTCUSDT 1m", 2500, 2500)]


@pytest.mark.integration
def test_the_backfill_script_loads_history_and_prints_one_status_line_per_series(engine, database_url, fake, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("kp_backfill_script", ROOT / "scripts" / "backfill.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("BINANCE_REST_URL", fake.url)

    code = script.main(["history", "--symbols", "btcusdt", "--interval", "1m", "--start", START.isoformat(), "--end", END.isoformat()])

    assert code == 0
    assert capsys.readouterr().out.strip() == "backfill: BTCUSDT 1m: 2500 candles written"
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM market.candles WHERE source = 'backfill'")).scalar() == 2500
