"""The output directory: trades.csv, equity.csv, summary.json, a self-contained report.html, equity.png."""

import html
import json
import re

import numpy as np
import pandas as pd
import pytest

from tests.helpers import SAMPLE
from trader.backtest.candles import read_kline_file
from trader.backtest.engine import FillModel
from trader.backtest.outputs import write_outputs
from trader.backtest.report_html import aggregate_candles
from trader.backtest.runner import run_backtest

SUMMARY_KEYS = {"start", "end", "bars", "trades", "total_return_pct", "cagr_pct", "max_drawdown_pct", "sharpe", "sortino",
                "win_rate_pct", "profit_factor", "exposure_pct", "fees_paid", "buy_and_hold_return_pct"}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    candles = read_kline_file(SAMPLE / "BTCUSDT-1h.csv")
    result = run_backtest(candles, "sma_cross", FillModel(fee_bps=10, slippage_bps=1), meta={"symbol": "BTCUSDT", "interval": "1h"})
    return result, write_outputs(result, tmp_path_factory.mktemp("report"))


def test_summary_json_holds_every_metric_and_the_recorded_parameters(written):
    result, out = written

    summary = json.loads((out / "summary.json").read_text())

    assert SUMMARY_KEYS <= set(summary)
    assert summary["bars"] == 7090 and summary["trades"] == len(result.trades) > 0
    assert summary["strategy"] == "sma_cross" and summary["params"] == {"fast": 10, "slow": 30}
    assert summary["fill_model"]["fee_bps"] == 10 and summary["fill_model"]["slippage_bps"] == 1
    assert summary["start"] == "2023-06-01T00:00:00.000Z" and summary["end"] == "2024-03-22T10:00:00.000Z"


def test_trades_csv_and_equity_csv_round_trip(written):
    result, out = written

    trades = pd.read_csv(out / "trades.csv")
    equity = pd.read_csv(out / "equity.csv")

    assert list(trades.columns) == ["entry_time", "exit_time", "side", "qty", "entry_price", "exit_price", "fee", "pnl", "return_pct"]
    np.testing.assert_allclose(trades["pnl"].to_numpy(), result.trades["pnl"].to_numpy())
    assert trades["entry_time"].iloc[0] == result.trades["entry_time"].iloc[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(equity) == 7090 and list(equity.columns) == ["time", "equity", "drawdown_pct", "position"]
    assert equity["equity"].iloc[-1] == pytest.approx(json.loads((out / "summary.json").read_text())["final_equity"])
    assert trades["fee"].sum() <= json.loads((out / "summary.json").read_text())["fees_paid"] + 1e-9


def test_report_html_is_self_contained(written):
    _, out = written

    page = (out / "report.html").read_text()

    assert "Bokeh" in page and "candles, entries and exits" in page and "drawdown" in page
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=[\"']?https?:", page)


def test_equity_png_is_a_png(written):
    _, out = written

    data = (out / "equity.png").read_bytes()

    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_long_histories_are_aggregated_for_the_page_keeping_the_extremes():
    candles = read_kline_file(SAMPLE / "BTCUSDT-1m.csv.gz")

    agg = aggregate_candles(candles, 1000)

    assert len(agg) <= 1000
    assert agg["high"].max() == candles["high"].max() and agg["low"].min() == candles["low"].min()
    assert agg["open"].iloc[0] == candles["open"].iloc[0] and agg["close"].iloc[-1] == candles["close"].iloc[-1]


def test_the_report_shows_params_and_fill_model_as_tables_not_dict_reprs(written):
    """issue 13.9: the report's summary printed ``{'fast': 10, 'slow': 30}`` and the fill model as one dict."""
    _, out = written

    page = html.unescape((out / "report.html").read_text())  # the tables are HTML inside bokeh's escaped document

    assert "{&#x27;" not in page and "{'fast'" not in page
    assert ">strategy params</caption>" in page and ">fill model</caption>" in page and ">summary</caption>" in page
    assert "<th style='text-align:left;padding-right:1em'>fast</th><td style='text-align:right'>10</td>" in page
    assert "<th style='text-align:left;padding-right:1em'>slippage (bps)</th><td style='text-align:right'>1</td>" in page
    assert "⚠" not in page  # 295 days: nothing to flag
