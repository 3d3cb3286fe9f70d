"""One trial: the trial's values → settings → ``fit`` on the train split, scored on dev epoch by epoch.

Each epoch's dev score goes to the pruner, which may stop the trial there; the trial records its values
as the ``lstm-train train`` command that reproduces it, its per-epoch history, and its dev figures at the
kept epoch (user attributes of the trial in the study).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from training.cli.pipeline import fit
from training.cli.search import space as search_space
from training.cli.search.settings import pretrain_files, settings_for
from training.cli.search.study import WORKER_ATTR, worker_id
from training.data.splits import Splits

logger = logging.getLogger(__name__)


def train_command(base: Sequence[str], values: Mapping[str, Any], args: argparse.Namespace) -> str:
    """``lstm-train train`` with ``tune``'s train options, then the trial's values (argparse keeps the last
    of a repeated option, so these win)."""
    return shlex.join([*base, *search_space.flags(values, pretrain_files(args)), "--seed", str(args.seed)])


def make_objective(
    args: argparse.Namespace, splits: Splits, space: Mapping[str, Any], base_command: Sequence[str]
) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, worker_id())  # first: a resumed study knows whose trial it was
        values = search_space.suggest(trial, space)
        trial.set_user_attr("command", train_command(base_command, values, args))
        history: list[dict[str, Any]] = []
        metric = "dev_micro_f1" if splits.task == "multi-label" else "dev_accuracy"

        def on_epoch(epoch: int, record: dict[str, Any]) -> None:
            history.append(dict(record))
            trial.set_user_attr("history", history)
            trial.report(float(record[metric]), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"dev {record[metric]:.4f} after epoch {epoch}: below the median")

        started = time.perf_counter()
        logger.info("trial %d: %s", trial.number, values)
        fitted = fit(splits, **settings_for(args, values), on_epoch=on_epoch)
        record = fitted.record
        best = next((row for row in record.history if row["epoch"] == record.best_epoch), {})
        trial.set_user_attr("best_epoch", record.best_epoch)
        trial.set_user_attr("epochs_run", record.epochs_run)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 1))
        for key, value in best.items():
            if key.startswith("dev_"):
                trial.set_user_attr(key, value)
        return float(record.extra["best_dev_score"])

    return objective
