"""Finished trials written to and read from Optuna's RDB tables with a few SQLAlchemy Core statements.

``RDBStorage.create_new_trial(template_trial)`` stores a finished trial through the ORM: ~13 statements (the study
lock, the new row and its flush, for each parameter a look-up of the study's previous distribution, for each value
and attribute a look-up of the trial, then the count that numbers it), 20 ms of a 60 ms trial on a year of 1-minute
candles. ``store`` writes the same rows (Optuna's own table definitions, so the same column types and encodings)
for a list of trials in one transaction: the study lock Optuna takes (``SELECT ... FOR UPDATE``, which also orders
us against Optuna's own ``create_new_trial``), one count, one multi-row insert per table. Each trial's number is
the count of the study's earlier trials, as Optuna numbers it.

``finished_ids`` and ``load`` read others' finished trials back: one query for the study's finished trial ids, and
only when some are new to the caller, one query per table for those trials alone. A parameter's distribution is
checked against the study's by the in-memory study the trials are added to (as Optuna's storages do).
"""

from __future__ import annotations

import datetime
import json
from collections import defaultdict
from collections.abc import Iterable

import sqlalchemy as sa
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
_T = models.TrialModel.__table__
_PARAMS = models.TrialParamModel.__table__
_VALUES = models.TrialValueModel.__table__
_USER = models.TrialUserAttributeModel.__table__
_SYSTEM = models.TrialSystemAttributeModel.__table__
_STEPS = models.TrialIntermediateValueModel.__table__
_STUDIES = models.StudyModel.__table__


def rdb_backend(storage) -> RDBStorage | None:
    """The ``RDBStorage`` under ``storage`` (itself, or the one Optuna's cached wrapper holds), else ``None``."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def _utc(dt: datetime.datetime | None) -> datetime.datetime | None:
    """A naive local datetime (Optuna's FrozenTrial) as the naive UTC Optuna's tables hold."""
    return None if dt is None else dt.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def _local(dt: datetime.datetime | None) -> datetime.datetime | None:
    return None if dt is None else dt.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)


def store(engine: sa.Engine, study_id: int, trials: list[FrozenTrial]) -> list[tuple[int, int]]:
    """Store finished ``trials`` in one transaction; return each one's ``(trial_id, number)``, in order."""
    if not trials:
        return []
    with engine.begin() as conn:
        conn.execute(sa.select(_STUDIES.c.study_id).where(_STUDIES.c.study_id == study_id).with_for_update())
        first = conn.execute(sa.select(sa.func.count()).select_from(_T).where(_T.c.study_id == study_id)).scalar_one()
        rows = [{"number": first + i, "study_id": study_id, "state": t.state, "datetime_start": _utc(t.datetime_start),
                 "datetime_complete": _utc(t.datetime_complete)} for i, t in enumerate(trials)]
        ids = conn.execute(_T.insert().returning(_T.c.trial_id, sort_by_parameter_order=True), rows).scalars().all()
        params, values, user, system, steps = [], [], [], [], []
        for trial_id, t in zip(ids, trials):
            for objective, value in enumerate(t.values or ()):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                values.append({"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
            for name, value in t.params.items():
                dist = t.distributions[name]
                params.append({"trial_id": trial_id, "param_name": name, "param_value": dist.to_internal_repr(value),
                               "distribution_json": distribution_to_json(dist)})
            user += [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in t.user_attrs.items()]
            system += [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in t.system_attrs.items()]
            for step, value in t.intermediate_values.items():
                stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                steps.append({"trial_id": trial_id, "step": step, "intermediate_value": stored,
                              "intermediate_value_type": kind})
        for table, batch in ((_VALUES, values), (_PARAMS, params), (_USER, user), (_SYSTEM, system), (_STEPS, steps)):
            if batch:
                conn.execute(table.insert(), batch)
    return [(trial_id, first + i) for i, trial_id in enumerate(ids)]


def finished_ids(engine: sa.Engine, study_id: int) -> list[int]:
    """The ids of the study's finished trials (one small query)."""
    with engine.connect() as conn:
        return conn.execute(sa.select(_T.c.trial_id).where(_T.c.study_id == study_id, _T.c.state.in_(FINISHED))
                            ).scalars().all()


def load(engine: sa.Engine, trial_ids: Iterable[int]) -> list[FrozenTrial]:
    """The trials ``trial_ids`` (finished ones: a trial still running is left out), by number."""
    ids = sorted(set(trial_ids))
    if not ids:
        return []
    with engine.connect() as conn:
        heads = conn.execute(sa.select(_T).where(_T.c.trial_id.in_(ids), _T.c.state.in_(FINISHED))).all()
        ids = [h.trial_id for h in heads]
        if not ids:
            return []
        of = lambda table: conn.execute(sa.select(table).where(table.c.trial_id.in_(ids))).all()  # noqa: E731
        values, params, user, system, steps = (defaultdict(list) for _ in range(5))
        for r in of(_VALUES):
            values[r.trial_id].append((r.objective, models.TrialValueModel.stored_repr_to_value(r.value, r.value_type)))
        for r in of(_PARAMS):
            params[r.trial_id].append((r.param_name, r.param_value, json_to_distribution(r.distribution_json)))
        for target, table in ((user, _USER), (system, _SYSTEM)):
            for r in of(table):
                target[r.trial_id].append((r.key, json.loads(r.value_json)))
        for r in of(_STEPS):
            steps[r.trial_id].append((r.step, models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
                r.intermediate_value, r.intermediate_value_type)))
    trials = []
    for h in heads:
        vals = [v for _, v in sorted(values[h.trial_id])] or None
        trials.append(FrozenTrial(
            number=h.number, state=h.state, value=None, values=vals, datetime_start=_local(h.datetime_start),
            datetime_complete=_local(h.datetime_complete),
            params={name: dist.to_external_repr(v) for name, v, dist in params[h.trial_id]},
            distributions={name: dist for name, _, dist in params[h.trial_id]}, user_attrs=dict(user[h.trial_id]),
            system_attrs=dict(system[h.trial_id]), intermediate_values=dict(steps[h.trial_id]), trial_id=h.trial_id))
    return sorted(trials, key=lambda t: t.number)
