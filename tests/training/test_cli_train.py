"""``train | export | evaluate`` end to end on a tiny CSV, through ``training.cli.main``."""

from __future__ import annotations

import csv
import json

import pytest

from service.bundle import list_models, load_bundle
from training.cli import main

SMALL = [
    "--embedding-dim",
    "8",
    "--hidden-dim",
    "8",
    "--epochs",
    "3",
    "--batch-size",
    "16",
    "--lr",
    "0.01",
    "--threads",
    "1",
    "--no-progress",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dataset):
    folder = tmp_path_factory.mktemp("cli")
    data = folder / "reviews.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "verdict"])
        writer.writerows(tiny_dataset("en", per_label=25))
        writer.writerow(["the cup match", "sport"])  # an exact duplicate
        writer.writerow(["the cup match", "sport"])
    argv = [
        "train",
        "--data",
        str(data),
        "--text-column",
        "review",
        "--label-column",
        "verdict",
        "--name",
        "cli-model",
        "--store",
        str(folder / "store"),
        "--run-dir",
        str(folder / "run"),
        *SMALL,
    ]
    assert main(argv) == 0
    return folder, argv


def test_train_writes_a_bundle_with_metrics_baseline_and_the_command(trained):
    folder, argv = trained
    assert list_models(folder / "store") == {"cli-model": [1]}
    manifest = load_bundle(folder / "store" / "cli-model" / "1").manifest
    assert manifest["training"]["command"] == "lstm-service " + " ".join(argv)
    assert manifest["training"]["data"]["deduplication"]["duplicates_removed"] == 1
    assert set(manifest["training"]["split_counts"]) == {"train", "dev", "test"}
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "dev_accuracy"} <= set(
        manifest["metrics"]
    )
    assert manifest["metrics"]["baseline"]["accuracy"] is not None
    assert manifest["model"]["embedding_dim"] == 8
    assert "4 × (input + hidden + 1) × hidden" in manifest["parameters"]["lstm_formula"]


def test_export_from_checkpoint_and_evaluate_the_bundle(trained, capsys):
    folder, _ = trained
    store = folder / "store"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(folder / "run"),
                "--name",
                "cli-model",
                "--store",
                str(store),
                "--no-baseline",
            ]
        )
        == 0
    )
    assert list_models(store) == {"cli-model": [1, 2]}
    first, second = (load_bundle(store / "cli-model" / v).manifest for v in ("1", "2"))
    assert first["metrics"]["accuracy"] == second["metrics"]["accuracy"]  # same weights, same split
    capsys.readouterr()
    assert main(["evaluate", "--bundle", str(store / "cli-model" / "2")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == first["metrics"]["accuracy"] and report["part"] == "test"
    assert main(["evaluate", "--checkpoint", str(folder / "run")]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == first["metrics"]["accuracy"]


def test_bad_input_exits_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--name", "x", "--pooling", "attention", "--data", "x.csv"])
    assert "invalid choice" in capsys.readouterr().err
    assert (
        main(["train", "--name", "x", "--data", str(tmp_path / "missing.csv"), "--store", str(tmp_path)]) == 2
    )
    assert main(["train", "--name", "x", "--store", str(tmp_path)]) == 2
