"""Finished trials written and read with SQLAlchemy Core on Optuna's tables (trader/backtest/optimize/tables.py)."""

import datetime
import uuid

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from trader.backtest.optimize import tables
from trader.backtest.optimize.storage import open_storage

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def storage(database_url):
    return open_storage(database_url, create=True)


def _templates() -> list:
    start = datetime.datetime(2026, 3, 29, 1, 30, 15, 123456)  # naive local, as Optuna's FrozenTrial has it
    dists = {"fast": IntDistribution(3, 12), "slow": IntDistribution(15, 40, step=5), "k": FloatDistribution(0.01, 1, log=True),
             "kind": CategoricalDistribution(["a", None, 2.5])}
    common = {"distributions": dists}
    return [
        create_trial(state=TrialState.COMPLETE, value=1.25, params={"fast": 4, "slow": 20, "k": 0.5, "kind": None},
                     user_attrs={"result": {"trades": 3, "total_return_pct": -1.5}}, system_attrs={"s": [1, 2]},
                     intermediate_values={0: 0.5, 3: float("nan")}, **common),
        create_trial(state=TrialState.COMPLETE, value=float("-inf"), params={"fast": 12, "slow": 40, "k": 0.01, "kind": 2.5},
                     **common),
        create_trial(state=TrialState.PRUNED, params={"fast": 7, "slow": 15, "k": 1.0, "kind": "a"},
                     user_attrs={"pruned": "2 closed trades < min_trades 5"}, **common),
        create_trial(state=TrialState.FAIL, params={"fast": 5}, distributions={"fast": dists["fast"]}),
    ], start


def _same(got, want) -> None:
    assert (got.state, got.values, got.params, got.distributions) == (want.state, want.values, want.params, want.distributions)
    assert (got.user_attrs, got.system_attrs) == (want.user_attrs, want.system_attrs)
    assert got.intermediate_values.keys() == want.intermediate_values.keys()
    assert all(a == b or (a != a and b != b) for a, b in zip(got.intermediate_values.values(), want.intermediate_values.values()))
    assert (got.datetime_start, got.datetime_complete) == (want.datetime_start, want.datetime_complete)


def test_stored_trials_read_back_through_optuna_as_they_were_and_numbered_after_optunas_own(storage):
    study = optuna.create_study(study_name=f"tables-{uuid.uuid4().hex[:8]}", storage=storage, direction="maximize")
    study.add_trial(create_trial(value=0.0, params={"fast": 3}, distributions={"fast": IntDistribution(3, 12)}))  # Optuna's write
    templates, start = _templates()
    for i, t in enumerate(templates):
        t.datetime_start = start + datetime.timedelta(seconds=i)
        t.datetime_complete = t.datetime_start + datetime.timedelta(milliseconds=7)

    stored = tables.store(storage.engine, study._study_id, templates[:3])  # several trials in one transaction
    stored += tables.store(storage.engine, study._study_id, templates[3:])
    study.add_trial(create_trial(value=2.0, params={"fast": 4}, distributions={"fast": IntDistribution(3, 12)}))  # Optuna's again

    assert [n for _, n in stored] == [1, 2, 3, 4]
    read = optuna.load_study(study_name=study.study_name, storage=open_storage(storage.url)).get_trials()
    assert [t.number for t in read] == [0, 1, 2, 3, 4, 5] and read[5].value == 2.0
    for got, want, (trial_id, _) in zip(read[1:5], templates, stored):
        _same(got, want)
        assert got._trial_id == trial_id
    ours = tables.load(storage.engine, [trial_id for trial_id, _ in stored] + [read[0]._trial_id])
    assert [t.number for t in ours] == [0, 1, 2, 3, 4]
    for got, want in zip(ours, read):
        _same(got, want)
        assert got._trial_id == want._trial_id
    assert sorted(tables.finished_ids(storage.engine, study._study_id)) == sorted(t._trial_id for t in read)


def test_a_running_trial_is_neither_listed_nor_loaded(storage):
    study = optuna.create_study(study_name=f"tables-{uuid.uuid4().hex[:8]}", storage=storage, direction="maximize")
    running = study.ask()
    running.suggest_int("fast", 3, 12)

    assert tables.finished_ids(storage.engine, study._study_id) == []
    assert tables.load(storage.engine, [running._trial_id]) == []
    study.tell(running, 1.0)
    (done,) = tables.load(storage.engine, tables.finished_ids(storage.engine, study._study_id))
    assert done.number == 0 and done.value == 1.0 and done.params == {"fast": running.params["fast"]}
