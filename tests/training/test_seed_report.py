"""training.loop.seed_report: a bundle's manifest gains its recipe's spread over seeds and the strong
baseline, while everything that identifies the bundle stays as it was; runs of another recipe are refused."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest

from service.bundle import BundleError, load_bundle
from training.loop.seed_report import record_seeds

REPO = Path(__file__).resolve().parents[2]


def _run_of(bundle: Path, runs: Path, seed: int, figures: dict[str, float], **settings: float) -> Path:
    """A copy of ``bundle`` standing for the same recipe trained with ``seed`` (its figures given)."""
    folder = runs / bundle.parent.name / str(seed)
    shutil.copytree(bundle, folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = seed
    manifest["training"]["seed"] = seed
    manifest["training"]["settings"].update(seed=seed, **settings)
    manifest["metrics"].update(figures)
    manifest["files"]["model.onnx"] = f"{seed:064x}"  # a retrain writes another graph (runs are not verified)
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def test_the_bundle_records_every_seed_the_spread_and_the_strong_baseline(store_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the fixture's data source is a path relative to the repository
    bundle = store_copy / "tiny-en" / "1"
    before = load_bundle(bundle).manifest
    runs = [
        _run_of(bundle, tmp_path, 7, {"accuracy": 0.5, "macro_f1": 0.4, "dev_accuracy": 0.6}),
        _run_of(bundle, tmp_path, 8, {"accuracy": 0.7, "macro_f1": 0.65, "dev_accuracy": 0.99}),
    ]
    record_seeds(bundle, [bundle, *runs], baseline=True)

    after = load_bundle(bundle).manifest  # still verifies: graph, tokenizer and labels untouched
    assert (after.files, after.golden, after.version, after.training) == (
        before.files,
        before.golden,
        before.version,
        before.training,
    )
    assert (after.metrics.accuracy, after.metrics.macro_f1) == (
        before.metrics.accuracy,
        before.metrics.macro_f1,
    )
    seeds = after.metrics.extra["seeds"]
    rows = seeds["per_seed"]
    assert [row["seed"] for row in rows] == [before.training.seed, 7, 8]
    accuracies = [before.metrics.accuracy, 0.5, 0.7]
    assert [row["accuracy"] for row in rows] == accuracies
    assert [row["the_bundle"] for row in rows] == [True, False, False]
    assert seeds["accuracy_mean"] == round(statistics.mean(accuracies), 4)
    assert seeds["accuracy_std"] == round(statistics.stdev(accuracies), 4)
    assert seeds["chosen_seed"] == before.training.seed
    assert before.metrics.dev_accuracy < 0.99  # seed 8 is best on dev: the bundle was not picked
    assert seeds["selected_by"].startswith("not by dev: seed 8's run has a better dev score")
    baseline = after.metrics.baseline
    assert set(baseline["dev_grid"]) == {
        "word 1-2-grams",
        "char 1-3-grams",
        "word 1-2-grams + char 1-3-grams",
    }
    assert baseline["dev_accuracy"] == max(max(grid.values()) for grid in baseline["dev_grid"].values())


def test_a_run_of_another_recipe_is_refused_and_the_manifest_is_left_alone(store_copy, tmp_path):
    bundle = store_copy / "tiny-en" / "1"
    written = (bundle / "manifest.json").read_bytes()
    other = _run_of(bundle, tmp_path, 7, {"accuracy": 0.9}, learning_rate=0.5)
    with pytest.raises(BundleError, match="seed 7 differs from the bundle's recipe in \\['settings'\\]"):
        record_seeds(bundle, [bundle, other], baseline=False)
    assert (bundle / "manifest.json").read_bytes() == written
