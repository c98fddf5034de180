"""Trials sampled in memory and stored in PostgreSQL one transaction each (trader/backtest/optimize/mirror.py)."""

import uuid

import optuna
import pytest
import sqlalchemy as sa

from tests.helpers import sample_rows, write_csv
from trader.backtest.candles import read_kline_file
from trader.backtest.engine import FillModel
from trader.backtest.optimize.mirror import MirroredStudy
from trader.backtest.optimize.run import evaluator_for
from trader.backtest.optimize.storage import open_storage
from trader.backtest.optimize.study import Setup, create_studies, run_trials

pytestmark = pytest.mark.integration
SPACE = {"fast": {"int": [3, 12]}, "slow": {"int": [15, 40]}, "constraints": ["fast < slow"]}


@pytest.fixture(scope="module")
def candles(tmp_path_factory):
    return read_kline_file(write_csv(tmp_path_factory.mktemp("mirror") / "BTCUSDT-1m.csv", sample_rows(1500)))


@pytest.fixture(scope="module")
def storage(database_url):
    return open_storage(database_url, create=True)


def _study(storage, candles) -> tuple[str, Setup]:
    setup = Setup(strategy="sma_cross", space=SPACE, objective="profit", min_trades=0, folds=0, bars=len(candles),
                  first_open_time=int(candles["open_time"].iloc[0]))
    return create_studies(storage, f"mirror-{uuid.uuid4().hex[:8]}", setup)[0], setup


def test_each_trial_costs_one_commit_and_a_bounded_number_of_statements(storage, candles):
    name, setup = _study(storage, candles)
    evaluator = evaluator_for(setup, candles, FillModel(fee_bps=0))
    counts = {"statements": 0, "commits": 0}
    on_statement = lambda *a: counts.__setitem__("statements", counts["statements"] + 1)  # noqa: E731
    on_commit = lambda *a: counts.__setitem__("commits", counts["commits"] + 1)  # noqa: E731
    sa.event.listen(storage.engine, "before_cursor_execute", on_statement)
    sa.event.listen(storage.engine, "commit", on_commit)
    try:
        ran = run_trials(storage, name, evaluator, setup, (0, len(candles)), 12)
    finally:
        sa.event.remove(storage.engine, "before_cursor_execute", on_statement)
        sa.event.remove(storage.engine, "commit", on_commit)

    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert ran == 12 and len(trials) == 12 and [t.number for t in trials] == list(range(12))
    assert all(t.state == optuna.trial.TrialState.COMPLETE and "result" in t.user_attrs for t in trials)
    # Optuna's ask/suggest/tell on the RDB storage took ~47 statements and 10 commits a trial here
    assert counts["commits"] / ran < 2 and counts["statements"] / ran < 20


def test_two_mirrors_on_one_study_see_each_others_trials_once(storage, candles):
    name, _ = _study(storage, candles)
    cached = optuna.storages.get_storage(storage)
    a, b = (MirroredStudy(cached, name, optuna.samplers.RandomSampler(seed=s)) for s in (1, 2))
    objective = lambda t: t.suggest_int("fast", 3, 12) + 0.0  # noqa: E731

    a.optimize(objective, 3)
    b.optimize(objective, 2)
    a.optimize(objective, 1)

    assert len(optuna.load_study(study_name=name, storage=storage).trials) == 6
    assert len(b.local.trials) == 5 and len(a.local.trials) == 6  # b pulled a's 3; a pulled b's 2 (no own twice)
    stored = sorted(t.params["fast"] for t in optuna.load_study(study_name=name, storage=storage).trials)
    assert sorted(t.params["fast"] for t in a.local.trials) == stored


def test_a_trial_that_raises_is_stored_as_failed_before_the_error_propagates(storage, candles):
    name, _ = _study(storage, candles)
    mirror = MirroredStudy(optuna.storages.get_storage(storage), name, optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        trial.suggest_int("fast", 3, 12)
        raise RuntimeError("strategy bug")

    with pytest.raises(RuntimeError, match="strategy bug"):
        mirror.optimize(objective, 5)

    (trial,) = optuna.load_study(study_name=name, storage=storage).trials
    assert trial.state == optuna.trial.TrialState.FAIL and "fast" in trial.params
