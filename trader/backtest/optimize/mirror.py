"""A study sampled in memory and stored in PostgreSQL one transaction per trial.

Optuna's ask/suggest/tell on its RDB storage costs about 50 SQL statements and 10 commits a trial (a session per
call: the new trial, each parameter with its distribution check, each user attribute, the state, and a re-read of
the study before each sampling): 36-50 % of a trial's wall time on a year of 1-minute candles. Here the sampler works
on an in-memory copy of the study (``local``). ``push`` stores each finished trial (parameters, value, state, user
attributes) as one template trial (``BaseStorage.create_new_trial``, what ``Study.add_trial`` does): one
transaction. ``pull`` copies in the trials other processes or tasks stored (one incremental read through Optuna's
cached storage, which re-reads one's own last trials too): before the first trial of each ``optimize`` and then
before every ``PULL_EVERY``-th, so a trial may miss at most the others' last ``PULL_EVERY - 1`` trials' worth of news, which a
sampler drawing from the whole history hardly notices (and a single process none at all).

Running trials are not in the database (TPE ignores them anyway without ``constant_liar``), so a killed process
leaves no zombie trial behind; a trial that raises is stored as failed before the error propagates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

PULL_EVERY = 4
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class MirroredStudy:
    """Trials of the stored study ``study_name`` (in ``storage``), sampled on an in-memory copy (``local``)."""

    def __init__(self, storage: BaseStorage, study_name: str, sampler: optuna.samplers.BaseSampler) -> None:
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study_name)
        self.local = optuna.create_study(directions=storage.get_study_directions(self.study_id), sampler=sampler)
        self._known: set[int] = set()  # stored trial numbers already in ``local`` (or pushed from it)
        self._pushed: set[int] = set()  # local trial numbers stored
        self._lock = threading.Lock()

    def pull(self) -> int:
        """Copy into ``local`` the finished stored trials it lacks; return how many."""
        with self._lock:
            new = [t for t in self.storage.get_all_trials(self.study_id, deepcopy=False, states=_FINISHED)
                   if t.number not in self._known]
            self._known.update(t.number for t in new)
            self.local.add_trials(new)
        return len(new)

    def push(self, _study: optuna.Study, trial: FrozenTrial) -> None:
        """Store one finished local trial, once (an Optuna ``optimize`` callback)."""
        with self._lock:
            if trial.number in self._pushed:
                return
            self._pushed.add(trial.number)
            trial_id = self.storage.create_new_trial(self.study_id, template_trial=trial)
            self._known.add(self.storage.get_trial(trial_id).number)  # from the cache: no round trip

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
