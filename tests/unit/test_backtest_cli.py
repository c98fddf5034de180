"""The backtest CLI over a kline file: arguments in, the output directory and a summary out."""

import argparse
import json
import re
import subprocess
import sys

import pytest

from klinepipe.features import parse_spec
from tests.conftest import ROOT
from tests.helpers import SAMPLE
from trader.backtest.candles import read_kline_file
from trader.backtest.cli import add_backtest_parser, main
from trader.backtest.runner import feature_frame, strategy_signals
from trader.strategies import build_strategy


def test_cli_backtests_a_csv_into_the_output_directory(tmp_path, capsys):
    out = tmp_path / "run"

    code = main(["--csv", str(SAMPLE / "BTCUSDT-30m.csv"), "--strategy", "sma_cross", "--params", '{"fast": 10, "slow": 30}',
                 "--fee-bps", "7.5", "--out", str(out)])

    assert code == 0
    assert {p.name for p in out.iterdir()} == {"trades.csv", "equity.csv", "summary.json", "report.html", "equity.png"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["symbol"] == "BTCUSDT" and summary["interval"] == "30m" and summary["fill_model"]["fee_bps"] == 7.5
    out_text = capsys.readouterr().out
    assert "total return" in out_text and "fee_bps" not in out_text


def test_cli_sweep_and_walk_forward_write_their_tables(tmp_path):
    out = tmp_path / "sweep"

    code = main(["backtest", "--csv", str(SAMPLE / "BTCUSDT-1h.csv"), "--sweep", '{"fast": [10, 30], "slow": [50]}',
                 "--walk-forward", "2", "--metric", "total_return_pct", "--workers", "2", "--no-html", "--out", str(out)])

    assert code == 0
    assert (out / "sweep.csv").exists() and (out / "walk_forward.csv").exists() and not (out / "report.html").exists()
    best = json.loads((out / "summary.json").read_text())["params"]
    assert best in ({"fast": 10, "slow": 50}, {"fast": 30, "slow": 50})


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    code = main(["--csv", str(SAMPLE / "BTCUSDT-30m.csv"), "--strategy", "nope", "--out", str(tmp_path / "x")])

    assert code == 2 and "unknown strategy 'nope'" in capsys.readouterr().err


def test_any_sma_periods_backtest_and_an_impossible_one_is_named_with_its_range(tmp_path, capsys):
    """It said only ``backtest: 'sma_5'`` (a KeyError's text); then that sma_5 is not in the feature set (issue 15:
    any period works, computed from the candles with the DAG's function)."""
    code = main(["--csv", str(SAMPLE / "BTCUSDT-1d.csv"), "--params", '{"fast": 5, "slow": 20}', "--out", str(tmp_path / "x"),
                 "--no-html", "--no-png"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "x" / "summary.json").read_text())["params"] == {"fast": 5, "slow": 20}

    code = main(["--csv", str(SAMPLE / "BTCUSDT-1d.csv"), "--params", '{"fast": 5, "slow": 20000}', "--out", str(tmp_path / "y")])

    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == ["backtest: strategy 'sma_cross': parameter slow must be int 3..1000, got 20000; it takes:"
                                        " fast (int 2..500, default 10), slow (int 3..1000, default 30)"]


def test_a_column_the_frame_lacks_is_named_with_the_ones_it_has():
    candles = read_kline_file(SAMPLE / "BTCUSDT-1d.csv")
    frame = feature_frame(candles, specs=[parse_spec("sma(10)")])

    with pytest.raises(ValueError) as err:
        strategy_signals(build_strategy("sma_cross", fast=5, slow=20), frame)

    assert str(err.value) == ("sma_cross (fast=5, slow=20) needs sma_5, sma_20, which this feature frame lacks"
                              " (it has close, sma_10)")


def test_the_parser_plugs_into_another_cli():
    parser = argparse.ArgumentParser(prog="python -m trader")
    add_backtest_parser(parser.add_subparsers(dest="command"))

    args = parser.parse_args(["backtest", "--csv", "x.csv", "--fee-bps", "5"])

    assert args.command == "backtest" and args.fee_bps == 5.0 and callable(args.func)


def test_python_dash_m_trader_backtest_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trader.backtest", "--csv", str(SAMPLE / "BTCUSDT-1d.csv"), "--no-html",
                           "--no-png", "--out", str(tmp_path / "m")], cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m" / "summary.json").exists()


RAW_FLOAT = re.compile(r"\d\.\d{5,}")  # e.g. -99.99999997586414: a number nobody rounded for the reader


def test_the_console_summary_is_a_table_of_rounded_figures(tmp_path, capsys):
    """issue 13.9: the CLI printed ``cagr_pct: -99.99999997586414`` and ``params: {'fast': 10, ...}``."""
    code = main(["--csv", str(SAMPLE / "BTCUSDT-1h.csv"), "--params", '{"fast": 10, "slow": 30}', "--no-html", "--no-png",
                 "--out", str(tmp_path / "t")])

    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert not RAW_FLOAT.search(out), out
    assert "{" not in out and "params" in out and "fast=10, slow=30" in out
    row = next(line for line in out.splitlines() if "total return" in line)
    assert f"{summary['total_return_pct']:,.2f} %" in row and "│" in row  # a table cell, two decimals
    assert summary["annualised_reliable"] is True and summary["warnings"] == [] and "⚠" not in out  # 295 days of bars


def test_a_short_backtest_flags_its_annualised_figures_on_screen_and_in_summary_json(tmp_path, capsys):
    """issue 13.9: a 4.8 h backtest printed CAGR -99.9 % and Sharpe -25 as if they were yearly figures."""
    code = main(["--csv", str(SAMPLE / "BTCUSDT-1m.csv.gz"), "--start", "2024-03-01T00:00", "--end", "2024-03-01T04:48",
                 "--params", '{"fast": 10, "slow": 30}', "--no-png", "--out", str(tmp_path / "short")])

    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads((tmp_path / "short" / "summary.json").read_text())
    assert summary["bars"] == 288 and summary["period_days"] == 0.2 and summary["annualised_reliable"] is False
    (warning,) = summary["warnings"]
    assert "4.8 h" in warning and "30 days" in warning
    for label in ("CAGR", "Sharpe", "Sortino"):
        assert "⚠" in next(line for line in out.splitlines() if line.lstrip("│ ").startswith(label)), out
    assert "⚠" not in next(line for line in out.splitlines() if "total return" in line)
    assert f"⚠ {warning[:40]}" in " ".join(out.split())
    page = (tmp_path / "short" / "report.html").read_text()
    assert warning in page.replace("&#x27;", "'")


def _trades(out):
    import csv

    with open(out / "trades.csv", newline="") as f:
        return [(r["entry_time"], r["exit_time"], float(r["entry_price"]), float(r["exit_price"])) for r in csv.DictReader(f)]


def _stops_run(tmp_path, name, *flags, csv="BTCUSDT-1h.csv"):
    out = tmp_path / name
    code = main(["backtest", "--csv", str(SAMPLE / csv), "--no-html", "--no-png", "--out", str(out), *flags])
    assert code == 0
    return out


def test_cli_backtests_with_the_live_traders_stop_model_from_flags_or_a_sleeves_file(tmp_path):
    """issue 16: ``--stop-loss/--take-profit/--trailing-stop`` (or a sleeve's settings) run ``trader.backtest.stops``."""
    import numpy as np

    from trader.backtest.engine import FillModel
    from trader.backtest.stops import StopModel, simulate_with_stops

    plain = _stops_run(tmp_path, "plain")
    oco = _stops_run(tmp_path, "oco", "--stop-loss", "1%", "--take-profit", "2%", "--tick", "0.01")
    (tmp_path / "sleeves.toml").write_text('[[sleeve]]\nsymbol = "BTCUSDT"\ninterval = "1h"\nstrategy = "sma_cross"\n'
                                           'stop_loss = "1%"\ntake_profit = "2%"\n')
    from_file = _stops_run(tmp_path, "file", "--sleeves-file", str(tmp_path / "sleeves.toml"), "--tick", "0.01")

    candles = read_kline_file(SAMPLE / "BTCUSDT-1h.csv")
    strategy = build_strategy("sma_cross")
    signals = strategy_signals(strategy, feature_frame(candles, strategy))
    want = simulate_with_stops(*(candles[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close")), signals,
                               FillModel(), StopModel(1.0, 2.0, tick=0.01))
    got = _trades(oco)
    closed = want.exit_bar >= 0
    assert np.allclose([g[3] for g in got[: int(closed.sum())]], want.exit_price[closed], rtol=1e-12)
    assert got != _trades(plain) and _trades(from_file) == got
    stops = json.loads((oco / "summary.json").read_text())["fill_model"]["stops"]
    assert stops == {"stop_pct": 1.0, "take_profit_pct": 2.0, "trailing_pct": None, "tick": 0.01, "stop_atr": None,
                     "take_profit_atr": None}

    trailing = _stops_run(tmp_path, "trailing", "--trailing-stop", "1.5%")
    assert json.loads((trailing / "summary.json").read_text())["fill_model"]["stops"]["trailing_pct"] == 1.5
    assert _trades(trailing) not in (got, _trades(plain))

    atr = _stops_run(tmp_path, "atr", "--stop-loss", "2atr", "--take-profit", "3atr", "--tick", "0.01")
    from klinepipe.features import parse_spec

    atr_14 = feature_frame(candles, specs=(parse_spec("atr_14"),))["atr_14"].to_numpy(dtype=float)
    want = simulate_with_stops(*(candles[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close")), signals,
                               FillModel(), StopModel(tick=0.01, stop_atr=2.0, take_profit_atr=3.0), atr_14)
    closed = want.exit_bar >= 0
    got_atr = _trades(atr)
    assert np.allclose([g[3] for g in got_atr[: int(closed.sum())]], want.exit_price[closed], rtol=1e-12)
    assert got_atr not in (got, _trades(plain))


@pytest.mark.parametrize(("flags", "message"), [
    (["--stop-loss", "2%", "--allow-short"], "backtest: protection is for long-only spot"),
    (["--take-profit", "2%"], "backtest: take_profit: needs a stop_loss"),
    (["--stop-loss", "2%", "--trailing-stop", "1%"], "backtest: trailing_stop: give either stop_loss or trailing_stop"),
    (["--stop-loss", "2"], "backtest: --stop-loss: '2' must be a percent"),
])
def test_cli_refuses_protection_it_cannot_model_in_one_line(tmp_path, capsys, flags, message):
    assert main(["backtest", "--csv", str(SAMPLE / "BTCUSDT-1d.csv"), "--out", str(tmp_path / "x"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
