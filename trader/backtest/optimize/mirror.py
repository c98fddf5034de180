"""A study sampled in memory and stored in PostgreSQL one transaction per trial.

Optuna's ask/suggest/tell on its RDB storage costs about 50 SQL statements and 10 commits a trial (a session per
call: the new trial, each parameter with its distribution check, each user attribute, the state, and a re-read of
the study before each sampling): 36-50 % of a trial's wall time on a year of 1-minute candles. Here the sampler works
on an in-memory copy of the study (``local``). ``push`` stores each finished trial (parameters, value, state, user
attributes) in one transaction of a few SQLAlchemy Core statements on Optuna's tables (``tables.store``: Optuna's
own ``create_new_trial(template_trial)`` took ~13 ORM statements, 20 ms of a 60 ms trial). ``pull`` copies in the
trials other processes or tasks stored: one query for the study's finished trial ids, and the rows of the new ones
only when there are some (``tables.load``); before the first trial of each ``optimize`` and then before every
``PULL_EVERY``-th, so a trial may miss at most the others' last ``PULL_EVERY - 1`` trials' worth of news, which a
sampler drawing from the whole history hardly notices (and a single process none at all). A storage that is not an
RDB one goes through Optuna's API (``create_new_trial``, ``get_all_trials``).

Running trials are not in the database (TPE ignores them anyway without ``constant_liar``), so a killed process
leaves no zombie trial behind; a trial that raises is stored as failed before the error propagates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from trader.backtest.optimize import tables

PULL_EVERY = 4


class MirroredStudy:
    """Trials of the stored study ``study_name`` (in ``storage``), sampled on an in-memory copy (``local``)."""

    def __init__(self, storage: BaseStorage, study_name: str, sampler: optuna.samplers.BaseSampler) -> None:
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study_name)
        self.local = optuna.create_study(directions=storage.get_study_directions(self.study_id), sampler=sampler)
        backend = tables.rdb_backend(storage)
        self._engine = backend.engine if backend is not None else None  # None: not an RDB storage, Optuna's API
        self._known: set[int] = set()  # ids of the stored trials already in ``local`` (or pushed from it)
        self._pushed: set[int] = set()  # local trial numbers stored
        self._lock = threading.Lock()

    def pull(self) -> int:
        """Copy into ``local`` the finished stored trials it lacks; return how many."""
        with self._lock:
            if self._engine is not None:  # one query for the ids; the new trials' rows only when there are some
                new = tables.load(self._engine, set(tables.finished_ids(self._engine, self.study_id)) - self._known)
            else:
                new = [t for t in self.storage.get_all_trials(self.study_id, deepcopy=False, states=tables.FINISHED)
                       if t._trial_id not in self._known]
            self._known.update(t._trial_id for t in new)
            self.local.add_trials(new)
        return len(new)

    def push(self, _study: optuna.Study, trial: FrozenTrial) -> None:
        """Store one finished local trial, once (an Optuna ``optimize`` callback)."""
        with self._lock:
            if trial.number in self._pushed:
                return
            self._pushed.add(trial.number)
            if self._engine is not None:
                self._known.update(trial_id for trial_id, _ in tables.store(self._engine, self.study_id, [trial]))
            else:
                self._known.add(self.storage.create_new_trial(self.study_id, template_trial=trial))

    def optimize(self, objective: Callable, n_trials: int, threads: int = 1) -> None:
        """``n_trials`` trials of ``objective`` (``threads``: Optuna's ``n_jobs``), each stored when it ends."""

        started = iter(range(n_trials))

        def pulled_first(trial):
            with self._lock:
                due = next(started) % PULL_EVERY == 0
            if due:
                self.pull()
            return objective(trial)

        try:
            self.local.optimize(pulled_first, n_trials=n_trials, n_jobs=threads, gc_after_trial=False,
                                callbacks=[self.push])
        except BaseException:
            for t in self.local.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
                self.push(self.local, t)
            raise
