"""An optimisation's directory: ``summary.json``, ``trials.csv``, ``folds.csv``, ``report.html`` and Optuna's plots.

The plots are Optuna's own (``optuna.visualization.matplotlib``, drawn with matplotlib's Agg backend, no display):
``history-<study>.png`` (objective per trial, best so far) and ``importance-<study>.png`` (which parameter moved
the objective most; needs two or more scored trials and a searched parameter that varied). ``report.html`` shows
the verdict, the folds, the best parameters, the images and the trial table; it needs no network.
"""

from __future__ import annotations

import html
import warnings
from pathlib import Path

import pandas as pd

from trader.backtest.optimize.results import as_json, trials_table
from trader.backtest.outputs import json_safe
from trader.backtest.present import inline

MAX_TRIAL_ROWS = 500


def write_report(result: dict, storage, names: list[str], out: Path, *, html: bool = True, png: bool = True) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    trials = trials_table(storage, names)
    trials.to_csv(out / "trials.csv", index=False)
    pd.DataFrame([{**f, "params": inline(f.get("params"))} for f in result["folds"]]).to_csv(out / "folds.csv", index=False)
    images = plot_studies(storage, names, out) if png else []
    result = {**result, "out_dir": str(out.resolve()), "images": [p.name for p in images]}
    if html:
        report = out / "report.html"
        report.write_text(render_html(result, trials), encoding="utf-8")
        result |= {"report": str(report.resolve()), "report_url": report.resolve().as_uri()}
    (out / "summary.json").write_text(as_json(result))
    return json_safe(result)


def plot_studies(storage, names: list[str], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as oplt

    written = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        scored = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        tag = name.replace("/", "-")
        plots = [("history", oplt.plot_optimization_history)]
        if len(scored) >= 2 and any(len({t.params.get(p) for t in scored}) > 1 for p in scored[0].params):
            plots.append(("importance", oplt.plot_param_importances))
        for kind, plot in plots if scored else []:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = plot(study)
            path = out / f"{kind}-{tag}.png"
            ax.figure.set_size_inches(8, 4.5)
            ax.figure.tight_layout()
            ax.figure.savefig(path, dpi=90)
            plt.close(ax.figure)
            written.append(path)
    return written


def render_html(result: dict, trials: pd.DataFrame) -> str:
    e = html.escape
    title = f"klinepipe optimisation: {result.get('strategy')} {result.get('symbol', '')} {result.get('interval', '')}"
    warn = "".join(f"<p style='color:#b26a00'><strong>⚠ {e(w)}</strong></p>" for w in result.get("warnings", []))
    facts = [("study", result.get("study")), ("objective", f"{result['objective']} (min {result['min_trades']} trades)"),
             ("best parameters", inline(result.get("best_params"))), ("searched", inline(result.get("space"))),
             ("fixed", inline(result.get("fixed"))), ("in-sample mean", _num(result.get("in_sample_mean"))),
             ("out-of-sample mean", _num(result.get("out_of_sample_mean"))), ("gap", _num(result.get("gap"))),
             ("walk-forward out-of-sample return", _num(result.get("oos_return_pct"), " %")),
             ("trials run now", result.get("trials_run"))]
    table = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{e(k)}</th><td>{e(str(v))}</td></tr>"
                    for k, v in facts)
    folds = pd.DataFrame([{**f, "params": inline(f.get("params"))} for f in result["folds"]])
    imgs = "".join(f"<figure style='display:inline-block;margin:0 1em 1em 0'><img src='{e(p)}' width='640'>"
                   f"<figcaption>{e(p)}</figcaption></figure>" for p in result.get("images", []))
    shown = trials.sort_values("value", ascending=False, na_position="last").head(MAX_TRIAL_ROWS)
    note = f"<p>best {MAX_TRIAL_ROWS} of {len(trials)} trials (all in trials.csv)</p>" if len(trials) > MAX_TRIAL_ROWS else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title></head>"
            f"<body style='font-family:sans-serif'><h2>{e(title)}</h2>{warn}<table>{table}</table>"
            f"<h3>walk-forward folds</h3>{folds.to_html(index=False, na_rep='–')}<h3>plots</h3>{imgs or '<p>none</p>'}"
            f"<h3>trials</h3>{note}{shown.to_html(index=False, na_rep='–', float_format=lambda x: f'{x:,.4g}')}</body></html>")


def _num(value, unit: str = "") -> str:
    return "–" if value is None else f"{value:,.3f}{unit}"
