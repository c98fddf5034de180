"""A study sampled in memory and stored in PostgreSQL by a writer thread, the trials waiting in one transaction.

Optuna's ask/suggest/tell on its RDB storage costs about 50 SQL statements and 10 commits a trial (a session per
call: the new trial, each parameter with its distribution check, each user attribute, the state, and a re-read of
the study before each sampling): 36-50 % of a trial's wall time on a year of 1-minute candles. Here the sampler works
on an in-memory copy of the study (``local``). ``push`` hands each finished trial (parameters, value, state, user
attributes) to a writer thread, which stores the trials waiting for it in one transaction of a few SQLAlchemy Core
statements on Optuna's tables (``tables.store``; Optuna's own ``create_new_trial(template_trial)`` took ~13 ORM
statements, 20 ms of a 60 ms trial, and even the Core transaction's round trips cost 5-10 ms a trial when the cores
are busy): the trial loop does not wait for PostgreSQL, and ``optimize`` returns once every trial it ran is stored.
``pull`` copies in the trials other processes or tasks stored: one query for the study's finished trial ids, and
the rows of the new ones only when there are some (``tables.load``); before the first trial of each ``optimize``
and then before every ``PULL_EVERY``-th, so a trial may miss at most the others' last ``PULL_EVERY - 1`` trials'
worth of news (plus the few milliseconds a trial waits for their writer), which a sampler drawing from the whole
history hardly notices (and a single process none at all: its results for a seed do not depend on the writer's
timing). A storage that is not an RDB one goes through Optuna's API (``create_new_trial``, ``get_all_trials``).

What a crash loses: running trials are not in the database (TPE ignores them anyway without ``constant_liar``), so
a killed process leaves no zombie trial behind, and it loses the finished trials its writer had not committed yet
(those of the last transaction's round trips, typically none or one); resuming the study runs them again. A trial
that raises is stored as failed, with every trial finished before it, before the error propagates. A failed write
stops the run: the storage's error is raised from the next trial's ``push`` (or at the end of ``optimize``).
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections.abc import Callable

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from trader.backtest.optimize import tables

PULL_EVERY = 4


class SharedBudget:
    """The trials left to run on one study, shared by forked processes: each takes the next one when it is free, so
    they all finish within a trial of each other instead of each after a fixed share (which left a core idle for
    0.1-0.2 s of a 1.6 s run). Create it before the processes are forked."""

    def __init__(self, trials: int) -> None:
        self._left = multiprocessing.get_context("fork").Value("i", trials)

    def take(self) -> bool:
        """One trial to run (``True``), or none left."""
        with self._left.get_lock():
            if self._left.value <= 0:
                return False
            self._left.value -= 1
            return True


class _Writer:
    """A thread storing the trials handed to it with ``store``: those waiting when it gets to them in one call."""

    def __init__(self, store: Callable[[list[FrozenTrial]], None]) -> None:
        self._store, self._waiting, self._closed = store, [], False
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="optuna-trial-writer", daemon=True)
        self._thread.start()

    def put(self, trial: FrozenTrial) -> None:
        with self._cond:
            if self.error is not None:
                raise self.error
            self._waiting.append(trial)
            self._cond.notify()

    def close(self) -> None:
        """Return once every trial handed over is stored; raise the storage's error if a write failed."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                batch, self._waiting = self._waiting, []
            if not batch:
                return  # closed, and nothing left
            try:
                self._store(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the trial loop
                with self._cond:
                    self.error = exc
                return


class MirroredStudy:
    """Trials of the stored study ``study_name`` (in ``storage``), sampled on an in-memory copy (``local``)."""

    def __init__(self, storage: BaseStorage, study_name: str, sampler: optuna.samplers.BaseSampler) -> None:
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study_name)
        self.local = optuna.create_study(directions=storage.get_study_directions(self.study_id), sampler=sampler)
        backend = tables.rdb_backend(storage)
        self._engine = backend.engine if backend is not None else None  # None: not an RDB storage, Optuna's API
        self._known: set[int] = set()  # ids of the stored trials already in ``local`` (or stored from it)
        self._pushed: set[int] = set()  # local trial numbers handed to the writer (or stored)
        self._lock = threading.Lock()  # the trial counter and ``_pushed``
        self._sync = threading.Lock()  # a write and its ids entering ``_known``, against a pull reading the ids
        self._writer: _Writer | None = None

    def pull(self) -> int:
        """Copy into ``local`` the finished stored trials it lacks; return how many."""
        with self._sync:
            if self._engine is not None:  # one query for the ids; the new trials' rows only when there are some
                new = tables.load(self._engine, set(tables.finished_ids(self._engine, self.study_id)) - self._known)
            else:
                new = [t for t in self.storage.get_all_trials(self.study_id, deepcopy=False, states=tables.FINISHED)
                       if t._trial_id not in self._known]
            self._known.update(t._trial_id for t in new)
            self.local.add_trials(new)
        return len(new)

    def push(self, _study: optuna.Study, trial: FrozenTrial) -> None:
        """Store one finished local trial, once (an Optuna ``optimize`` callback): through the writer during
        ``optimize``, here and now otherwise."""
        with self._lock:
            if trial.number in self._pushed:
                return
            self._pushed.add(trial.number)
        if self._writer is not None:
            self._writer.put(trial)
        else:
            self._store([trial])

    def _store(self, trials: list[FrozenTrial]) -> None:
        with self._sync:
            if self._engine is not None:
                ids = [trial_id for trial_id, _ in tables.store(self._engine, self.study_id, trials)]
            else:
                ids = [self.storage.create_new_trial(self.study_id, template_trial=t) for t in trials]
            self._known.update(ids)

    def optimize(self, objective: Callable, n_trials: int, threads: int = 1, budget: SharedBudget | None = None) -> None:
        """``n_trials`` trials of ``objective`` (``threads``: Optuna's ``n_jobs``), or with a ``budget`` (one thread)
        as many as it hands this process; all stored when it returns."""
        callbacks: list[Callable] = [self.push]
        if budget is not None:
            if threads != 1:
                raise ValueError("a shared budget is for one thread a process")
            if not budget.take():
                return
            n_trials = None  # until the budget says stop: each trial takes the next one when it ends
            callbacks.append(lambda study, _trial: budget.take() or study.stop())
        started = itertools.count()

        def pulled_first(trial):
            with self._lock:
                due = next(started) % PULL_EVERY == 0
            if due:
                self.pull()
            return objective(trial)

        self._writer = _Writer(self._store)
        try:
            self.local.optimize(pulled_first, n_trials=n_trials, n_jobs=threads, gc_after_trial=False,
                                callbacks=callbacks)
        except BaseException:
            if self._writer.error is None:  # else the storage's error is raised below
                for t in self.local.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
                    self.push(self.local, t)
            raise
        finally:
            writer, self._writer = self._writer, None
            writer.close()
