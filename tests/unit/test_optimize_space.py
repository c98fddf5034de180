"""Search spaces, constraints, objectives and the indicator cache of the optimiser (pure, in memory)."""

from dataclasses import dataclass

import numpy as np
import optuna
import pytest

from klinepipe.features import compute_feature_frame
from tests.helpers import SAMPLE
from trader.backtest.candles import read_kline_file
from trader.backtest.engine import FillModel
from trader.backtest.optimize.evaluate import Evaluator, IndicatorCache, score
from trader.backtest.optimize.results import _verdict
from trader.backtest.optimize.space import parse_space, space_from_declared
from trader.backtest.optimize.study import Setup, suggest
from trader.backtest.runner import run_backtest
from trader.strategies import build_strategy

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def candles():
    return read_kline_file(SAMPLE / "BTCUSDT-1h.csv").iloc[:3000].reset_index(drop=True)


def test_a_space_reads_from_json_and_toml_alike():
    toml = 'constraints = ["fast < slow"]\nfast = {int = [2, 50]}\nslow = {int = [10, 200], step = 5}\nk = {choices = ["a", "b"]}\n'
    json_text = '{"fast": {"int": [2, 50]}, "slow": {"int": [10, 200], "step": 5}, "k": {"choices": ["a", "b"]}, "constraints": ["fast < slow"]}'

    assert parse_space(toml).as_dict() == parse_space(json_text).as_dict()
    assert str(parse_space(toml).constraints[0]) == "fast < slow"


@pytest.mark.parametrize("raw, message", [
    ({"fats": {"int": [2, 5]}}, "no parameter fats; the strategy takes: fast, slow"),
    ({"fast": {"int": [9, 5]}}, "fast: low 9 > high 5"),
    ({"fast": [2, 5]}, 'fast: expected {"int": [low, high]}'),
    ({"fast": {"int": [2, 5]}, "constraints": ["fast < slwo"]}, "names slwo, which is not in the space"),
    ({"fast": {"int": [2, 5]}, "constraints": ["fast less than 3"]}, "is not 'NAME OP NAME'"),
    ({"fast": {"float": [0, 5], "log": True}}, "a log range needs low > 0"),
])
def test_a_bad_space_is_one_line_naming_the_parameter(raw, message):
    with pytest.raises(ValueError, match="^space: ") as err:
        parse_space(raw, declared={"fast": 10, "slow": 30})

    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_grid_holds_every_feasible_point_on_the_steps():
    space = parse_space({"fast": {"int": [10, 30], "step": 10}, "slow": {"int": [20, 40], "step": 10}, "constraints": ["fast < slow"]})

    assert space.grid() == [{"fast": 10, "slow": 20}, {"fast": 10, "slow": 30}, {"fast": 10, "slow": 40},
                            {"fast": 20, "slow": 30}, {"fast": 20, "slow": 40}, {"fast": 30, "slow": 40}]


def test_declared_ranges_give_the_default_space_and_none_is_a_clear_error():
    @dataclass
    class Ranged:  # what a Param with bounds looks like; read with getattr, so a plain Param works too
        default: int
        low: int | None = None
        high: int | None = None
        choices: tuple | None = None

    space = space_from_declared({"fast": Ranged(10, 2, 50), "kind": Ranged(0, choices=(0, 1)), "other": Ranged(3)})

    assert space.as_dict() == {"fast": {"int": [2, 50]}, "kind": {"choices": [0, 1]}}
    assert space_from_declared(build_strategy("sma_cross").declared_params).as_dict() == {
        "fast": {"int": [2, 500]}, "slow": {"int": [3, 1000]}}  # the bundled strategies declare their ranges
    with pytest.raises(ValueError, match="declares no parameter ranges; give --space"):
        space_from_declared({"other": Ranged(3)})


def test_a_less_than_constraint_narrows_the_later_range_so_no_trial_is_wasted():
    space = parse_space({"fast": {"int": [2, 60]}, "slow": {"int": [10, 200], "step": 5}, "lower": {"float": [0, 50]},
                         "upper": {"float": [0, 100]}, "constraints": ["fast < slow", "upper > lower", "lower <= 40"]})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    drawn = []

    study.optimize(lambda t: drawn.append(suggest(t, space)) or 0.0, n_trials=300)

    assert len(drawn) == 300  # none pruned
    assert all(p["fast"] < p["slow"] and (p["slow"] - 10) % 5 == 0 and p["lower"] < p["upper"] and p["lower"] <= 40
               for p in drawn)
    assert {p["slow"] for p in drawn if p["fast"] >= 55} <= {60, 65} | set(range(70, 201, 5))


def test_a_point_no_value_can_complete_is_pruned_with_the_reason():
    space = parse_space({"fast": {"int": [10, 20]}, "slow": {"int": [5, 12]}, "constraints": ["fast < slow"]})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))

    study.optimize(lambda t: suggest(t, space) and 1.0, n_trials=40)

    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all("no slow in [5, 12] satisfies the constraints" in t.user_attrs["pruned"] for t in pruned)
    assert all(t.params["fast"] < t.params["slow"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)


def test_scores_follow_the_objective_and_refuse_too_few_trades():
    summary = {"trades": 12, "total_return_pct": 8.0, "cagr_pct": 30.0, "max_drawdown_pct": -15.0, "sharpe": 1.5, "sortino": None}

    assert score(summary, "profit", 10) == (8.0, "")
    assert score(summary, "calmar", 10) == (2.0, "")
    assert score(summary, "sharpe", 10) == (1.5, "")
    assert score(summary, "sortino", 10) == (None, "sortino undefined (no variance)")
    assert score(summary, "sharpe", 13) == (None, "12 closed trades < min_trades 13")


def test_parameter_sets_share_the_indicators_they_have_in_common(candles):
    cache = IndicatorCache(candles)
    ev = Evaluator(candles, "sma_cross", FillModel(), "profit", 0, cache=cache)

    for slow in (30, 50):
        ev.evaluate({"fast": 10, "slow": slow}, (0, len(candles)))

    assert (cache.misses, cache.hits) == (3, 1)  # sma_10 computed once for both
    expected = compute_feature_frame(candles, columns=["sma_10", "sma_50"])
    frame = cache.frame(["sma_10", "sma_50"])
    np.testing.assert_array_equal(frame["sma_10"].to_numpy(), expected["sma_10"].to_numpy())
    np.testing.assert_array_equal(frame["sma_50"].to_numpy(), expected["sma_50"].to_numpy())


def test_a_trial_scores_what_the_backtest_of_its_window_says(candles):
    model = FillModel(fee_bps=5)
    ev = Evaluator(candles, "rsi_reversion", model, "sharpe", 1)

    value, why, summary = ev.evaluate({"lower": 25.0, "upper": 75.0}, (0, 2000))

    alone = run_backtest(candles.iloc[:2000], build_strategy("rsi_reversion", lower=25.0, upper=75.0), model).summary
    assert why == "" and summary["bars"] == 2000 and value == alone["sharpe"]
    assert (summary["trades"], summary["final_equity"]) == (alone["trades"], alone["final_equity"]) and alone["trades"] > 0


def _setup(folds: int) -> Setup:
    return Setup(strategy="sma_cross", space={}, objective="sharpe", folds=folds)


def test_the_overfitting_warning_fires_when_out_of_sample_keeps_less_than_half():
    folds = [{"params": {"fast": 10}, "in_sample": 2.0, "out_of_sample": 0.4},
             {"params": {"fast": 12}, "in_sample": 1.0, "out_of_sample": 0.2}]

    verdict = _verdict(folds, _setup(2), FillModel(), 10_500.0)

    assert verdict["overfit"] and verdict["gap"] == pytest.approx(1.2) and verdict["best_params"] == {"fast": 12}
    assert verdict["oos_return_pct"] == pytest.approx(5.0)
    assert "overfitting warning" in verdict["warnings"][0] and "1.500 in sample but 0.300" in verdict["warnings"][0]


def test_no_warning_when_out_of_sample_holds_up_and_a_plain_one_without_folds():
    held = _verdict([{"params": {"fast": 10}, "in_sample": 1.0, "out_of_sample": 0.9}], _setup(1), FillModel(), 10_000.0)
    in_sample_only = _verdict([{"params": {"fast": 10}, "in_sample": 1.0}], _setup(0), FillModel(), 10_000.0)

    assert held["overfit"] is False and held["warnings"] == []
    assert "no out-of-sample check" in in_sample_only["warnings"][0]
