"""What a search leaves in its run folder (``<run-dir>/search/``) and in the published bundle's manifest.

- ``trials.csv``: one row per trial: number, state, dev score, every value, dev figures, epochs, seconds,
  and the ``lstm-train train`` command that reproduces it;
- ``best.json``: the best trial (values, dev figures, command) and the study's counts;
- ``history.png`` (optimisation history), ``importances.png`` (parameter importances, fANOVA; needs two
  complete trials with different values) and ``best_curves.png`` (the best trial's loss and dev per epoch).
"""

from __future__ import annotations

import csv
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from training.cli.search.study import counts, redact
from training.export.plots import _save, plot_curves

logger = logging.getLogger(__name__)

DEV_COLUMNS = ("dev_accuracy", "dev_macro_f1", "dev_micro_f1", "dev_subset_accuracy")


def trial_row(trial: FrozenTrial, names: list[str]) -> dict[str, Any]:
    attrs = trial.user_attrs
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name.lower(),
        "dev_score": trial.value,
    }
    row.update({name: trial.params.get(name) for name in names})
    row.update({key: attrs.get(key) for key in DEV_COLUMNS if key in attrs})
    history = attrs.get("history") or []
    row["epochs_run"] = attrs.get("epochs_run", len(history))
    row["best_epoch"] = attrs.get("best_epoch")
    row["seconds"] = attrs.get("seconds")
    row["command"] = attrs.get("command")
    return row


def summary(
    study: optuna.Study, url: str, budget: dict[str, Any], searched: list[str], chosen: dict[str, Any]
) -> dict[str, Any]:
    """The manifest's ``training.extra.search``: how the configuration was chosen, on dev only.
    ``chosen``: every parameter's value, searched (the best trial's) and fixed."""
    best = study.best_trial
    seen = counts(study)
    return {
        "study": study.study_name,
        "storage": redact(url),
        "selected_by": "dev score of the best trial (test is never seen by the search)",
        "trials": seen["complete"] + seen["pruned"],
        "states": dict(seen),
        "budget": budget,
        "searched": searched,
        "best_trial": best.number,
        "best_dev_score": best.value,
        "chosen": chosen,
        "command": best.user_attrs.get("command"),
    }


def write_report(study: optuna.Study, folder: Path, searched: list[str], found: dict[str, Any]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    rows = [trial_row(trial, searched) for trial in trials]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with (folder / "trials.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (folder / "best.json").write_text(json.dumps(found, indent=1, ensure_ascii=False) + "\n")
    written = [folder / "trials.csv", folder / "best.json", *_plots(study, folder)]
    logger.info("search report: %s", ", ".join(str(path) for path in written))
    return written


def _plots(study: optuna.Study, folder: Path) -> list[Path]:
    from optuna.visualization import matplotlib as optuna_plots

    written = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        written.append(_save(optuna_plots.plot_optimization_history(study).figure, folder / "history.png"))
        try:
            axes = optuna_plots.plot_param_importances(study)
            written.append(_save(axes.figure, folder / "importances.png"))
        except (RuntimeError, ValueError, ZeroDivisionError) as error:  # too few trials or no variation
            logger.info("no parameter importances (%s trials complete): %s", len(complete), error)
    history = study.best_trial.user_attrs.get("history") or []
    if history:
        written.append(
            plot_curves(history, folder / "best_curves.png", study.best_trial.user_attrs.get("best_epoch"))
        )
    return written
