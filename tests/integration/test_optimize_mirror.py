"""Trials sampled in memory and stored in PostgreSQL by a writer thread (trader/backtest/optimize/mirror.py)."""

import time
import uuid

import optuna
import pytest
import sqlalchemy as sa

from tests.helpers import sample_rows, write_csv
from trader.backtest.candles import read_kline_file
from trader.backtest.engine import FillModel
from trader.backtest.optimize import tables
from trader.backtest.optimize.mirror import MirroredStudy, SharedBudget
from trader.backtest.optimize.run import evaluator_for, plan_jobs, run_jobs
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


def test_a_trial_that_raises_is_stored_as_failed_with_the_ones_before_it_and_a_resume_sees_them(storage, candles):
    name, _ = _study(storage, candles)
    mirror = MirroredStudy(optuna.storages.get_storage(storage), name, optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        fast = trial.suggest_int("fast", 3, 12)
        if trial.number == 3:
            raise RuntimeError("strategy bug")
        return float(fast)

    with pytest.raises(RuntimeError, match="strategy bug"):
        mirror.optimize(objective, 10)

    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3 + [optuna.trial.TrialState.FAIL]
    assert all("fast" in t.params for t in trials)
    resumed = MirroredStudy(optuna.storages.get_storage(open_storage(storage.url)), name, optuna.samplers.RandomSampler(seed=1))
    assert resumed.pull() == 4 and resumed.pull() == 0
    resumed.optimize(lambda t: t.suggest_int("fast", 3, 12) + 0.0, 2)
    assert [t.number for t in optuna.load_study(study_name=name, storage=storage).trials] == list(range(6))


def test_every_trial_is_stored_when_optimize_returns(storage, candles):
    name, _ = _study(storage, candles)
    mirror = MirroredStudy(optuna.storages.get_storage(storage), name, optuna.samplers.RandomSampler(seed=0))

    mirror.optimize(lambda t: t.suggest_int("fast", 3, 12) + 0.0, 25)

    stored = optuna.load_study(study_name=name, storage=open_storage(storage.url)).trials
    assert len(stored) == 25 and sorted(t.params["fast"] for t in stored) == sorted(t.params["fast"] for t in mirror.local.trials)


def test_a_failed_write_stops_the_trials_and_its_error_propagates(storage, candles, monkeypatch):
    name, _ = _study(storage, candles)
    mirror = MirroredStudy(optuna.storages.get_storage(storage), name, optuna.samplers.RandomSampler(seed=0))

    def broken(*_a):
        raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(tables, "store", broken)
    ran = []

    def objective(trial):
        ran.append(trial.number)
        deadline = time.monotonic() + 30
        while trial.number and mirror._writer.error is None and time.monotonic() < deadline:
            time.sleep(0.001)  # the second trial ends once the writer has failed on the first
        return trial.suggest_int("fast", 3, 12) + 0.0

    with pytest.raises(sa.exc.OperationalError, match="server closed the connection"):
        mirror.optimize(objective, 20)

    assert ran == [0, 1]  # the second trial's push raised: no third trial
    assert optuna.load_study(study_name=name, storage=storage).trials == []


def test_one_process_draws_the_same_trials_for_a_seed(storage, candles):
    points = []
    for _ in range(2):
        name, setup = _study(storage, candles)
        run_trials(storage, name, evaluator_for(setup, candles, FillModel(fee_bps=0)), setup, (0, len(candles)), 14)
        points.append([(t.params, t.value) for t in optuna.load_study(study_name=name, storage=storage).trials])
    assert len(points[0]) == 14 and points[0] == points[1]
    assert len({(p["fast"], p["slow"]) for p, _ in points[0]}) > 5  # TPE past its 10 random startup trials, not a constant


def test_processes_share_a_studys_trials_and_run_exactly_as_many(storage, candles, database_url):
    name, setup = _study(storage, candles)
    jobs = plan_jobs([name], len(candles), setup, 11, 2)

    stats = run_jobs(jobs, evaluator_for(setup, candles, FillModel(fee_bps=0)), setup, database_url, 2)

    assert [j.trials for j in jobs] == [6, 5] and sum(s["ran"] for s in stats) == 11
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert [t.number for t in trials] == list(range(11)) and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_a_shared_budget_hands_out_its_trials_once(storage, candles):
    name, _ = _study(storage, candles)
    cached = optuna.storages.get_storage(storage)
    budget = SharedBudget(7)
    a, b = (MirroredStudy(cached, name, optuna.samplers.RandomSampler(seed=s)) for s in (1, 2))

    a.optimize(lambda t: t.suggest_int("fast", 3, 12) + 0.0, 0, budget=budget)
    b.optimize(lambda t: t.suggest_int("fast", 3, 12) + 0.0, 0, budget=budget)

    assert len(a.local.trials) == 7 and b.local.trials == []  # nothing left for b
    assert len(optuna.load_study(study_name=name, storage=storage).trials) == 7 and not budget.take()
