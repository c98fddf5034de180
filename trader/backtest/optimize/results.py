"""What the studies found: per fold the best in-sample point and how it then did out of sample; the overfitting gap.

The gap is the mean in-sample objective of the chosen points minus their mean out-of-sample objective. Tuning
always flatters the window it tuned on; the warning fires when the out-of-sample figure keeps less than
``KEEP`` of the in-sample one (or turns negative): the in-sample ranking then says little about the future.
"""

from __future__ import annotations

import json

import pandas as pd

from trader.backtest.engine import FillModel
from trader.backtest.optimize.evaluate import Evaluator, score, walk_forward_windows
from trader.backtest.optimize.study import Setup
from trader.backtest.sweep import _time

KEEP = 0.5
_SUMMARY_KEYS = ("trades", "total_return_pct", "sharpe", "sortino", "max_drawdown_pct", "final_equity")


def collect(storage, names: list[str], setup: Setup, evaluator: Evaluator, model: FillModel) -> dict:
    import optuna

    candles = evaluator.candles
    windows = walk_forward_windows(len(candles), setup.folds)
    folds, equity = [], model.cash
    for k, (name, ((a, b), (c, d))) in enumerate(zip(names, windows)):
        study = optuna.load_study(study_name=name, storage=storage)
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        row = {"fold": k + 1, "study": name, "train_start": _time(candles, a), "train_end": _time(candles, b),
               "trials": len(study.get_trials(deepcopy=False)), "scored": len(complete)}
        if not complete:
            folds.append(row | {"params": None, "in_sample": None, "out_of_sample": None,
                                "note": _why_none(study)})
            continue
        best = study.best_trial
        params = {**(setup.fixed or {}), **best.params}
        row |= {"params": params, "in_sample": best.value, "best_trial": best.number}
        if d > c:
            oos = evaluator.window(evaluator.signals(params), (c, d), cash=equity)
            value, why = score(oos, setup.objective, setup.min_trades)
            equity = oos["final_equity"]
            row |= {"test_start": _time(candles, c), "test_end": _time(candles, d), "out_of_sample": value,
                    "note": why, **{f"oos_{key}": oos[key] for key in _SUMMARY_KEYS}}
        folds.append(row)
    return {"objective": setup.objective, "min_trades": setup.min_trades, "folds_requested": setup.folds,
            "space": setup.space, "fixed": setup.fixed or {}, "folds": folds, **_verdict(folds, setup, model, equity)}


def trials_table(storage, names: list[str]) -> pd.DataFrame:
    """Every trial of every fold: number, state, value, params, trades, why pruned, duration (seconds)."""
    import optuna

    frames = []
    for k, name in enumerate(names):
        rows = []
        for t in optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False):
            result = t.user_attrs.get("result") or {}
            rows.append({"fold": k + 1, "trial": t.number, "state": t.state.name.lower(), "value": t.value, **t.params,
                         "trades": result.get("trades"), "return_pct": result.get("total_return_pct"),
                         "pruned_because": t.user_attrs.get("pruned"),
                         "duration_s": t.duration.total_seconds() if t.duration else None})
        frames.append(pd.DataFrame(rows))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _verdict(folds: list[dict], setup: Setup, model: FillModel, equity: float) -> dict:
    chosen = [f for f in folds if f.get("params") is not None]
    best = chosen[-1]["params"] if chosen else None
    out = {"best_params": best, "warnings": []}
    if not chosen:
        notes = [f["note"] for f in folds if f.get("note")]
        out["warnings"].append("no trial was scored" + (f" ({notes[0]})" if notes else "") + ": see pruned_because in trials.csv")
        return out
    in_sample = [f["in_sample"] for f in chosen]
    out["in_sample_mean"] = sum(in_sample) / len(in_sample)
    if setup.folds == 0:
        out["warnings"].append(f"no out-of-sample check (folds 0): the best {setup.objective} "
                               f"{out['in_sample_mean']:.3f} is in sample only, and optimistic")
        return out
    oos = [f["out_of_sample"] for f in chosen if f.get("out_of_sample") is not None]
    out["oos_return_pct"] = 100.0 * (equity / model.cash - 1.0)
    if not oos:
        out["warnings"].append("no out-of-sample window could be scored (see the folds' notes)")
        return out
    out["out_of_sample_mean"] = sum(oos) / len(oos)
    out["gap"] = out["in_sample_mean"] - out["out_of_sample_mean"]
    i, o = out["in_sample_mean"], out["out_of_sample_mean"]
    if (i > 0 and o < KEEP * i) or (i <= 0 and o < i):
        out["overfit"] = True
        out["warnings"].append(
            f"overfitting warning: the chosen parameters scored {setup.objective} {i:.3f} in sample but {o:.3f} on the "
            f"next, unseen window (gap {i - o:.3f}): the in-sample figure is optimistic, expect the out-of-sample one")
    else:
        out["overfit"] = False
    return out


def _why_none(study) -> str:
    reasons = [t.user_attrs.get("pruned") for t in study.get_trials(deepcopy=False) if t.user_attrs.get("pruned")]
    return f"no trial scored; e.g. {reasons[0]}" if reasons else "no trial ran"


def as_json(result: dict) -> str:
    from trader.backtest.outputs import json_safe

    return json.dumps(json_safe(result), indent=2) + "\n"
