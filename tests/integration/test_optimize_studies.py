"""Optimisation end to end on real PostgreSQL: studies in schema ``optuna``, walk-forward folds, resuming, the CLI."""

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.helpers import sample_rows, write_csv
from trader.__main__ import main as trader_main
from trader.backtest.candles import read_kline_file
from trader.backtest.engine import FillModel
from trader.backtest.optimize.evaluate import Evaluator, walk_forward_windows
from trader.backtest.optimize.run import OptimizeRequest, execute

pytestmark = pytest.mark.integration
GRID = {"fast": {"int": [5, 15], "step": 5}, "slow": {"int": [20, 40], "step": 10}, "constraints": ["fast < slow"]}


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("optimize") / "BTCUSDT-1m.csv", sample_rows(3000))


def _studies(database_url: str, prefix: str) -> dict[str, int]:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT s.study_name, count(t.trial_id) FROM optuna.studies s LEFT JOIN optuna.trials t"
                                    " USING (study_id) WHERE s.study_name LIKE :p GROUP BY 1"), {"p": prefix + "%"}).all()
    engine.dispose()
    return dict(rows)


def test_a_grid_walks_forward_choosing_each_folds_best_and_trading_it_on_the_next_window(csv, database_url, tmp_path):
    model = FillModel(fee_bps=0)
    req = OptimizeRequest(out_dir=tmp_path / "out", storage=database_url, study="grid-wf", csv=csv, space=GRID,
                          objective="profit", min_trades=1, folds=2, sampler="grid", workers=2, model=model)

    result = execute(req)

    assert _studies(database_url, "grid-wf") == {"grid-wf/fold1": 9, "grid-wf/fold2": 9}  # every point once
    candles = read_kline_file(csv)
    check = Evaluator(candles, "sma_cross", model, "profit", 1)
    points = [{"fast": f, "slow": s} for f in (5, 10, 15) for s in (20, 30, 40)]
    cash = model.cash
    for fold, ((a, b), (c, d)) in zip(result["folds"], walk_forward_windows(len(candles), 2)):
        by_value = {json.dumps(p): check.evaluate(p, (a, b))[0] for p in points}
        best = json.loads(max(by_value, key=by_value.get))
        assert fold["params"] == best and fold["in_sample"] == by_value[json.dumps(best)]
        oos = check.window(check.signals(best), (c, d), cash=cash)  # chained: starts with the last fold's equity
        assert fold["out_of_sample"] == oos["total_return_pct"] and fold["oos_trades"] == oos["trades"]
        cash = oos["final_equity"]
    assert result["best_params"] == result["folds"][-1]["params"]
    assert result["oos_return_pct"] == pytest.approx(100 * (cash / model.cash - 1))
    assert result["gap"] == pytest.approx(result["in_sample_mean"] - result["out_of_sample_mean"])
    out = tmp_path / "out"
    assert {"report.html", "trials.csv", "folds.csv", "summary.json", "history-grid-wf-fold1.png",
            "importance-grid-wf-fold2.png"} <= {p.name for p in out.iterdir()}
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 18 and set(trials["state"]) == {"complete"} and (trials["trades"] > 0).all()
    html = (out / "report.html").read_text()
    assert "history-grid-wf-fold1.png" in html and "walk-forward folds" in html


def test_running_again_resumes_the_study_and_another_setup_is_refused(csv, database_url, tmp_path):
    req = OptimizeRequest(out_dir=tmp_path / "a", storage=database_url, study="resume", csv=csv, strategy="rsi_reversion",
                          space={"lower": {"float": [15, 40]}, "upper": {"float": [60, 85]}}, min_trades=1, folds=1,
                          trials=4, workers=1, html=False, png=False)

    first = execute(req)
    second = execute(req)

    assert first["trials_run"] == second["trials_run"] == 4
    assert _studies(database_url, "resume") == {"resume/fold1": 8}
    assert pd.read_csv(tmp_path / "a" / "trials.csv")["trial"].tolist() == list(range(8))
    with pytest.raises(ValueError, match=r"study 'resume/fold1' already exists with another setup \(objective: 'sharpe' then,"
                                         r" 'profit' now\)"):
        execute(OptimizeRequest(**{**req.__dict__, "objective": "profit"}))


def test_too_few_trades_prune_every_trial_and_say_why(csv, database_url, tmp_path):
    req = OptimizeRequest(out_dir=tmp_path / "o", storage=database_url, study="few", csv=csv, space=GRID, min_trades=10_000,
                          folds=0, sampler="grid", workers=1, html=False, png=False)

    result = execute(req)

    assert result["best_params"] is None and "closed trades < min_trades 10000" in result["warnings"][0]
    trials = pd.read_csv(tmp_path / "o" / "trials.csv")
    assert set(trials["state"]) == {"pruned"} and trials["pruned_because"].str.contains("< min_trades 10000").all()


def test_the_cli_prints_the_folds_and_the_verdict_and_refuses_a_bad_space_in_one_line(csv, database_url, tmp_path, capsys):
    args = ["optimize", "--csv", str(csv), "--storage", database_url, "--study", "cli", "--space",
            '{"fast": {"int": [5, 12]}, "slow": {"int": [20, 60]}}', "--constraint", "fast < slow", "--trials", "6",
            "--folds", "2", "--min-trades", "1", "--workers", "2", "--no-png", "--out", str(tmp_path / "cli")]

    assert trader_main(args) == 0
    out = capsys.readouterr().out
    assert "best parameters: fast=" in out and "out of sample" in out and f"output: {tmp_path / 'cli'}" in out
    assert _studies(database_url, "cli") == {"cli/fold1": 6, "cli/fold2": 6}

    assert trader_main([*args[:8], '{"fast": {"int": [5]}}', "--study", "cli-bad"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optimize: space: fast: expected") and err.count("\n") == 1
