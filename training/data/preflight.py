"""Everything ``lstm-train train`` can check before it trains, checked first: a refused run costs seconds,
not a training run, and leaves nothing behind (no checkpoint, no run folder, no bundle).

Checked: the model name, the store and the version (a new version number, or ``--version`` free), the run
folder, and the data (read and split, which checks the columns and the labels). Retraining a model the
store already holds is said up front, with the version that serves now; a label set that differs from
that version's is refused unless ``--force`` (the new version would replace a model answering other
labels). After training, :func:`compare` warns when the new version scores below the one serving or below
the baseline.

The promotion rule: the service serves the highest version of a model whose manifest does not say
``"promoted": false`` (``--no-promote`` writes that; so does an int8 variant without ``--promote``), unless
a version is pinned or loaded by version; a new version is picked up at the next start, or at the next
store poll when ``LSTM_SERVICE_RELOAD_INTERVAL_SECONDS`` is set.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from service.bundle import BundleError, Manifest, check_name, list_versions, load_bundle, promoted_versions
from service.bundle import read_manifest as read_bundle_manifest
from training.data import runs
from training.data.reading import DataError
from training.data.source import DataSpec
from training.data.splits import Splits

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What a training run will write, decided before it starts."""

    store: Path  # absolute
    name: str
    version: int
    run_dir: Path
    splits: Splits
    serving: int | None = None  # the version the service serves now (None: a new model)
    serving_manifest: Manifest | None = None
    claimed: bool = False  # the version is claimed in the store (training.data.runs): release it at the end


def writable_folder(path: Path, what: str) -> Path:
    """``path`` as an absolute folder that exists or can be created; refused with the reason otherwise."""
    path = Path(path).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise DataError(f"{what} {path} is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"{what} {path} cannot be written: {existing} is not a writable folder")
    return path


def serving_version(store: Path, name: str) -> tuple[int | None, Manifest | None]:
    """The version the service would serve now (the highest promoted one) and its manifest, if readable."""
    versions = promoted_versions(store, name)
    if not versions:
        return None, None
    try:
        return versions[0], read_bundle_manifest(store / name / str(versions[0]))
    except BundleError:
        return versions[0], None


def _labels_of(folder: Path, manifest: Manifest | None) -> list[str] | None:
    try:
        return load_bundle(folder).labels
    except BundleError:
        labels = manifest.training.labels if manifest is not None else None
        return list(labels) if labels else None


def plan_training(
    data: DataSpec,
    store: Path,
    name: str,
    *,
    version: int | None,
    run_dir: Path | None,
    force: bool = False,
    promoted: bool = True,
    resume: bool = False,
    reserve: bool = False,
    epochs: int | None = None,
) -> Plan:
    """Check everything a training run needs before it starts, load the data, and say what will happen.

    ``reserve``: claim the version in the store (:mod:`training.data.runs`) once every check passed; the
    default run folder is then ``runs/<name>/<version>``. ``resume``: the run folder is ``run_dir`` or the
    newest interrupted run of ``name``, and its version is kept where it is still free."""
    try:
        check_name(name)
    except BundleError as error:
        raise DataError(f"--name: {error}") from error
    store = writable_folder(store, "model store")
    present = list_versions(store, name)
    if version is not None:
        if version < 1:
            raise DataError(f"--version must be a positive integer, got {version}")
        if version in present:
            raise DataError(
                f"{name} version {version} already exists in {store}; bundles are immutable: leave out "
                f"--version to write version {max(present) + 1}"
            )
    wanted, above = version, 0
    if resume:
        run_dir = runs.resume_folder(name, run_dir, epochs)
        recorded = (runs.read_json(run_dir / runs.RUN_FILE) or {}).get("version")
        # the interrupted run's version, while it is still free and above every version written since
        if (
            wanted is None
            and isinstance(recorded, int)
            and recorded > max(runs.taken(store, name), default=0)
        ):
            wanted = recorded
    elif run_dir is not None:
        runs.refuse_overwrite(writable_folder(run_dir, "run folder"), resume)
    else:
        _say_interrupted(name)
        above = max(runs.interrupted_versions(name), default=0)  # their run folders stay theirs
    chosen = wanted if wanted is not None else max(runs.taken(store, name) | {above}) + 1
    writable_folder(run_dir if run_dir is not None else runs.RUNS / name, "run folder")
    splits = data.load()  # reads every file: columns, encodings, delimiters and labels are checked here
    serving, manifest = serving_version(store, name)
    if serving is not None:
        served_labels = _labels_of(store / name / str(serving), manifest)
        if served_labels is not None and sorted(served_labels) != sorted(splits.labels):
            message = (
                f"{name} version {serving} serves the labels {sorted(served_labels)}, but this data has "
                f"{sorted(splits.labels)}: version {chosen} would replace it with a model answering other "
                "labels. Choose another --name for a new model, or pass --force to write it anyway"
            )
            if not force:
                raise DataError(message)
            logger.warning("--force: %s", message)
    if reserve:
        chosen = runs.claim_version(store, name, wanted, above)
    run_dir = writable_folder(
        run_dir if run_dir is not None else runs.RUNS / name / str(chosen), "run folder"
    )
    plan = Plan(store, name, chosen, run_dir, splits, serving, manifest, claimed=reserve)
    logger.info("%s", announce(plan, promoted))
    return plan


def _say_interrupted(name: str) -> None:
    """A new run beside an interrupted one of the same name starts from epoch 1: said, with the way back."""
    found = runs.interrupted_runs(name)
    if found:
        logger.warning(
            "%s holds an interrupted run of %s: this run starts afresh from epoch 1 in a folder of its own; "
            "to continue that one instead, stop this and run the same command with --resume",
            found[0],
            name,
        )


def announce(plan: Plan, promoted: bool = True) -> str:
    """The sentence said before training starts: what is written, and when it serves."""
    where = f"{plan.store / plan.name / str(plan.version)}"
    if plan.serving is None:
        head = f"new model {plan.name}, version {plan.version} ({where})"
    else:
        head = f"new version {plan.version} of {plan.name} ({where}; version {plan.serving} serves now)"
    if not promoted:
        return (
            f"{head}; written but not served (--no-promote): serve it with POST /admin/models/{plan.name}"
            f'/load {{"version": {plan.version}}} or LSTM_SERVICE_PINNED={plan.name}={plan.version}'
        )
    return (
        f"{head}; served on restart (or at the next store poll with LSTM_SERVICE_RELOAD_INTERVAL_SECONDS set)"
    )


def _score(manifest: Manifest) -> tuple[str, float | None, float | None]:
    """The headline figure of a bundle (accuracy, or micro-F1 for multi-label) and its baseline's."""
    metrics = manifest.metrics
    if manifest.task == "multi-label":
        key, value = "micro-F1", metrics.extra.get("micro_f1")
        baseline = (metrics.baseline or {}).get("micro_f1")
    else:
        key, value = "accuracy", metrics.accuracy
        baseline = (metrics.baseline or {}).get("accuracy")
    number = float(value) if isinstance(value, int | float) else None
    return key, number, float(baseline) if isinstance(baseline, int | float) else None


def compare(plan: Plan, written: Manifest, path: Path) -> list[str]:
    """Warnings for a new version that scores below the version serving or below the baseline (each on
    its own test split); every one says how to keep the old version serving. Also logged."""
    key, score, baseline = _score(written)
    warnings = []
    if score is not None and baseline is not None and score < baseline:
        warnings.append(
            f"version {plan.version} of {plan.name}: test {key} {score} is below the TF-IDF baseline's "
            f"{baseline}; more epochs or a bigger model may close the gap"
        )
    worse = False
    if plan.serving_manifest is not None and plan.serving_manifest.task == written.task:
        _, served, _ = _score(plan.serving_manifest)
        worse = score is not None and served is not None and score < served
        if worse:
            warnings.append(
                f"version {plan.version} of {plan.name}: test {key} {score} is below version "
                f"{plan.serving}'s {served} (the version serving now; each measured on its own test split)"
            )
    # the way back only where the new version is worse than the one it replaces
    if worse and written.promoted is not False and plan.serving is not None:
        warnings.append(
            f"it replaces version {plan.serving} when the service next reads the store (its next start, or "
            f"its next store poll where LSTM_SERVICE_RELOAD_INTERVAL_SECONDS is set); to keep version "
            f"{plan.serving} serving, pin it (LSTM_SERVICE_PINNED={plan.name}={plan.serving}) or remove "
            f"{path}; --no-promote writes a version without serving it"
        )
    for warning in warnings:
        logger.warning("%s", warning)
    return warnings
