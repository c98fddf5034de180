"""Optuna studies of one optimisation: one per walk-forward fold, each tuned on its in-sample window only.

``create_studies`` makes (or finds again) the studies ``<name>/fold<k>`` (``<name>`` alone without folds) with the
setup stored as study attributes, so resuming with another setup is refused instead of mixing two searches.
``run_trials`` adds trials to one study; several processes, or Airflow's mapped tasks, may run it on the same
study at once (the storage hands each trial to one of them). A grid search enqueues every feasible point once.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from trader.backtest.optimize.evaluate import Evaluator
from trader.backtest.optimize.space import Dimension, SearchSpace, parse_space

SAMPLERS = ("tpe", "random", "grid")


@dataclass(frozen=True)
class Setup:
    """What a study searches: stored with it (JSON-safe) and checked when it is resumed."""

    strategy: str
    space: dict
    objective: str = "sharpe"
    min_trades: int = 1
    folds: int = 3
    sampler: str = "tpe"
    seed: int = 0
    fixed: dict | None = None  # parameters held at a value (not searched)
    bars: int = 0
    first_open_time: int = 0

    def search_space(self) -> SearchSpace:
        return parse_space(self.space)

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def study_names(name: str, folds: int) -> list[str]:
    return [name] if folds == 0 else [f"{name}/fold{k + 1}" for k in range(folds)]


def create_studies(storage, name: str, setup: Setup) -> list[str]:
    """The setup's studies, created when new; an existing one with another setup is an error naming it."""
    import optuna

    if setup.sampler not in SAMPLERS:
        raise ValueError(f"sampler: {setup.sampler!r} is not one of {', '.join(SAMPLERS)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = study_names(name, setup.folds)
    for study_name in names:
        study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize", load_if_exists=True)
        stored = study.user_attrs.get("setup")
        if stored is None:
            study.set_user_attr("setup", setup.as_json())
            if setup.sampler == "grid":
                for point in setup.search_space().grid():
                    study.enqueue_trial(point, skip_if_exists=True)
        elif stored != setup.as_json():
            raise ValueError(f"study {study_name!r} already exists with another setup ({_diff(stored, setup)}): "
                             "resume it with the same arguments, or choose another --study name")
    return names


def load_setup(storage, study_name: str) -> Setup:
    import optuna

    return Setup(**json.loads(optuna.load_study(study_name=study_name, storage=storage).user_attrs["setup"]))


def run_trials(storage, study_name: str, evaluator: Evaluator, setup: Setup, bars: tuple[int, int], n_trials: int,
               worker: int = 0, threads: int = 1, budget=None) -> int:
    """Add ``n_trials`` trials to the study (a grid: until its queue is empty; with a ``mirror.SharedBudget``: as
    many as it hands this process); return how many this call ran.

    ``threads`` > 1 is Optuna's ``n_jobs`` (threads in this process; the GIL serialises much of a trial, which is
    why the CLI and the DAG use processes instead: ``python -m bench optimize`` measures both)."""
    import optuna

    from trader.backtest.optimize.mirror import MirroredStudy

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.get_storage(storage)  # the cached wrapper load_study makes of an RDBStorage, kept
    space, fixed = setup.search_space(), setup.fixed or {}
    ran = 0

    def objective(trial) -> float:
        nonlocal ran
        ran += 1
        params = suggest(trial, space)
        try:
            value, why, summary = evaluator.evaluate({**fixed, **params}, bars)
        except ValueError as exc:  # a point the strategy refuses (or a feature it lacks): a pruned trial, with why
            value, why, summary = None, str(exc), None
        if summary is not None:
            trial.set_user_attr("result", {k: summary[k] for k in ("trades", "total_return_pct", "max_drawdown_pct")})
        if value is None:
            trial.set_user_attr("pruned", why)
            raise optuna.TrialPruned(why)
        return value

    if setup.sampler == "grid":
        _drain_queue(optuna.load_study(study_name=study_name, storage=storage), storage, objective)
    elif n_trials > 0 or budget is not None:  # sampled in memory, stored by a writer thread (see mirror.py)
        MirroredStudy(storage, study_name, _sampler(setup, worker)).optimize(objective, n_trials, threads, budget)
    return ran


def _drain_queue(study, storage, objective) -> None:
    """Run the study's waiting (enqueued) trials until none is left; each is claimed atomically in the storage, so
    processes and tasks draining the same queue never run a point twice nor sample a point off the grid."""
    import optuna

    while (trial_id := _claim(study, storage)) is not None:
        trial = optuna.trial.Trial(study, trial_id)
        try:
            study.tell(trial, objective(trial))
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def _claim(study, storage) -> int | None:
    """A waiting trial set to running by this call (as Optuna's own queue does), or ``None`` when none is left."""
    import optuna

    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.RUNNING):
                return t._trial_id
        except optuna.exceptions.UpdateFinishedTrialError:  # another process claimed and finished it meanwhile
            continue
    return None


def suggest(trial, space: SearchSpace) -> dict:
    """Draw a point; an ``a < b`` constraint narrows ``b`` to the values above the ``a`` drawn. A point that still
    breaks a constraint is pruned (``optuna.TrialPruned``) with the constraint's text."""
    import optuna

    params: dict = {}
    for d in space.dimensions:
        if d.kind == "choices":
            params[d.name] = trial.suggest_categorical(d.name, list(d.choices))
            continue
        low, high = _narrowed(d, params, space)
        if low > high:
            trial.set_user_attr("pruned", f"no {d.name} in [{d.low}, {d.high}] satisfies the constraints given {params}")
            raise optuna.TrialPruned(trial.user_attrs["pruned"])
        if d.kind == "int":
            params[d.name] = trial.suggest_int(d.name, int(low), int(high), step=d.step or 1, log=d.log)
        else:
            params[d.name] = trial.suggest_float(d.name, low, high, step=d.step, log=d.log)
    broken = [str(c) for c in space.constraints if not c.holds(params)]
    if broken:
        trial.set_user_attr("pruned", f"breaks {', '.join(broken)}")
        raise optuna.TrialPruned(trial.user_attrs["pruned"])
    return params


def _narrowed(d: Dimension, drawn: dict, space: SearchSpace) -> tuple[float, float]:
    """``d``'s range cut by each ``x < d`` / ``d < x`` (``<=`` alike) whose ``x`` is a number or a value drawn."""
    low, high = d.low, d.high
    known = lambda side: side if isinstance(side, (int, float)) else drawn.get(side)  # noqa: E731
    for c in space.constraints:
        if c.op == "!=":
            continue
        lhs, op, rhs = (c.left, c.op, c.right) if c.op in ("<", "<=") else (c.right, _flip(c.op), c.left)
        if rhs == d.name and isinstance(known(lhs), (int, float)):
            low = max(low, _above(known(lhs), d, strict=op == "<"))
        elif lhs == d.name and isinstance(known(rhs), (int, float)):
            high = min(high, _below(known(rhs), d, strict=op == "<"))
    return low, high


def _above(bound: float, d: Dimension, strict: bool) -> float:
    """The smallest value of ``d``'s range that is > (``strict``) or >= ``bound``."""
    if d.kind == "int" or d.step:
        step = d.step or 1
        k = math.floor((bound - d.low) / step) + 1 if strict else math.ceil((bound - d.low) / step)
        return d.low + max(k, 0) * step
    return math.nextafter(bound, math.inf) if strict else bound


def _below(bound: float, d: Dimension, strict: bool) -> float:
    if d.kind == "int" or d.step:
        step = d.step or 1
        k = math.ceil((bound - d.low) / step) - 1 if strict else math.floor((bound - d.low) / step)
        return d.low + k * step
    return math.nextafter(bound, -math.inf) if strict else bound


def _flip(op: str) -> str:
    return {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "!=": "!="}[op]


def _sampler(setup: Setup, worker: int):
    import optuna

    seed = setup.seed + 7919 * worker  # each process its own stream, reproducible
    if setup.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _diff(stored: str, setup: Setup) -> str:
    old, new = json.loads(stored), asdict(setup)
    return ", ".join(f"{k}: {old.get(k)!r} then, {new[k]!r} now" for k in new if old.get(k) != new[k]) or "?"
