"""Record the spread of a bundle's recipe over several seeds, and the strong baseline, in its manifest.

``python -m training.loop.seed_report model_store/news-topic/1 --runs RUN [RUN ...] [--baseline]`` reads the
bundles that the same recipe wrote with other seeds (``lstm-train train ... --seed S --store SCRATCH``; the
bundle itself may be one of the runs), checks that each one differs from the bundle only in its seed, and
writes ``metrics.seeds`` in the shape ``lstm-train train --seeds`` writes it: every seed's dev and test
figures, their mean and standard deviation, and the seed the bundle was trained with. ``--baseline``
rebuilds the bundle's split from its recorded data source and replaces ``metrics.baseline`` with the
TF-IDF + logistic-regression baseline whose features and C are chosen on dev. The graph, the tokenizer,
the labels and their checksums do not change (``record_in_manifest`` refuses otherwise).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.bundle import BundleError, Manifest, load_bundle, read_manifest, record_in_manifest
from training.data.source import recorded_splits
from training.loop.baseline import tfidf_baseline

FIGURES = ("accuracy", "macro_f1")


def _recipe(manifest: Manifest) -> dict[str, Any]:
    """Everything that defines how a bundle was trained, except its seed."""
    written = manifest.to_dict()
    training = written["training"]
    settings = {key: value for key, value in (training.get("settings") or {}).items() if key != "seed"}
    pretrained = {
        key: value
        for key, value in (training.get("pretrained") or {}).items()
        if key in ("mode", "dim", "source", "w2v_epochs")
    }
    return {
        "task": written["task"],
        "model": written["model"],
        "settings": settings,
        "tokenizer": training.get("tokenizer_settings"),
        "pretrained": pretrained,
        "data": training.get("data"),
        "split_counts": training.get("split_counts"),
    }


def _differs(recorded: Any, other: Any) -> bool:
    """Whether two recipe values disagree; keys only one side records (settings added to the trainer after
    the bundle was written, at their defaults then) are not compared."""
    if isinstance(recorded, dict) and isinstance(other, dict):
        return any(_differs(recorded[key], other[key]) for key in recorded.keys() & other.keys())
    return bool(recorded != other)


def seed_row(manifest: Manifest, bundle: Manifest) -> dict[str, Any]:
    """One seed's dev and test figures; ``the_bundle``: whether this run is the bundle itself (a retrain
    with the bundle's seed is another run, and its figures need not match)."""
    metrics = manifest.metrics
    return {
        "seed": manifest.training.seed,
        "the_bundle": manifest.files == bundle.files,  # same graph, tokenizer and labels
        "created_at": manifest.created_at,
        "dev_score": metrics.dev_accuracy,
        "dev_accuracy": metrics.dev_accuracy,
        "dev_macro_f1": metrics.dev_macro_f1,
        "accuracy": metrics.accuracy,
        "macro_f1": metrics.macro_f1,
    }


def seed_summary(bundle: Manifest, runs: Sequence[Manifest]) -> dict[str, Any]:
    """``metrics.seeds`` for ``bundle`` from runs of its recipe; refuses runs of another recipe."""
    recipe = _recipe(bundle)
    for run in runs:
        differing = sorted(key for key, value in _recipe(run).items() if _differs(recipe.get(key), value))
        if differing:
            raise BundleError(
                f"the run with seed {run.training.seed} differs from the bundle's recipe in {differing}"
            )
    rows = sorted((seed_row(run, bundle) for run in runs), key=lambda row: row["seed"])
    seeds = [row["seed"] for row in rows]
    if len(set(seeds)) != len(seeds):
        raise BundleError(f"seeds repeat among the runs: {seeds}")
    best = max(rows, key=lambda row: (row["dev_score"], -row["seed"]))
    if best["the_bundle"]:
        selected_by = "dev accuracy"
    elif any(row["the_bundle"] for row in rows):
        selected_by = f"not by dev: seed {best['seed']}'s run has a better dev score than the bundle's"
    else:
        selected_by = (
            f"not among these runs (trained after the bundle); seed {best['seed']}'s has the best dev score"
        )
    summary: dict[str, Any] = {
        "selected_by": selected_by,
        "chosen_seed": bundle.training.seed,
        "recipe": bundle.training.command,
        "per_seed": rows,
    }
    for key in FIGURES:
        values = [float(row[key]) for row in rows]
        summary[f"{key}_mean"] = round(float(np.mean(values)), 4)
        summary[f"{key}_std"] = round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4)
    return summary


def strong_baseline(folder: Path) -> dict[str, Any]:
    """The TF-IDF + LR baseline on the bundle's own split (rebuilt from its data source)."""
    bundle = load_bundle(folder)
    splits = recorded_splits(bundle)

    def part(name: str) -> tuple[list[str], list[Any]]:
        return [example.text for example in getattr(splits, name)], splits.targets(name)

    return tfidf_baseline(bundle.tokenizer, part("train"), part("dev"), part("test"), splits.labels)


def record_seeds(folder: Path, runs: Sequence[Path], baseline: bool) -> str:
    folder = Path(folder)
    manifest = load_bundle(folder).manifest
    summary = seed_summary(manifest, [read_manifest(Path(run)) for run in runs])
    metrics = manifest.metrics
    extra = {**metrics.extra, "seeds": summary}
    new_baseline = strong_baseline(folder) if baseline else metrics.baseline
    metrics = dataclasses.replace(metrics, baseline=new_baseline, extra=extra)
    record_in_manifest(folder, dataclasses.replace(manifest, metrics=metrics))
    line = (
        f"{folder}: seeds {[row['seed'] for row in summary['per_seed']]}: test accuracy "
        f"{summary['accuracy_mean']} ± {summary['accuracy_std']}, macro-F1 {summary['macro_f1_mean']} ± "
        f"{summary['macro_f1_std']}; the bundle (seed {summary['chosen_seed']}): {manifest.metrics.accuracy}"
    )
    if new_baseline:
        line += (
            f"; baseline {new_baseline.get('features')} C={new_baseline.get('C')}: dev "
            f"{new_baseline.get('dev_accuracy')}, test {new_baseline.get('accuracy')}"
        )
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.loop.seed_report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("bundle", type=Path, help="the bundle folder, e.g. model_store/news-topic/1")
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="bundle folders of the seeds")
    parser.add_argument(
        "--baseline", action="store_true", help="recompute metrics.baseline on the bundle's split"
    )
    arguments = parser.parse_args(argv)
    print(record_seeds(arguments.bundle, arguments.runs, arguments.baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
