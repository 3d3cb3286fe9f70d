"""``lstm-train train | export | evaluate`` end to end on a tiny CSV, through ``training.cli.main``."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

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
    "--allow-weak",  # three epochs of a tiny model: the floor is tested in test_first_hour_training.py
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
    assert manifest.training.command == "lstm-train " + " ".join(argv)
    assert manifest.training.data.extra["deduplication"]["duplicates_removed"] == 1
    assert manifest.data_source.data == str(folder / "reviews.csv")
    assert manifest.data_source.text_column == "review"
    assert set(manifest.training.split_counts) == {"train", "dev", "test"}
    metrics = manifest.metrics
    assert None not in (metrics.accuracy, metrics.macro_f1, metrics.per_class, metrics.confusion_matrix)
    assert metrics.dev_accuracy is not None and metrics.baseline["accuracy"] is not None
    assert manifest.model["embedding_dim"] == 8
    assert "4 × (input + hidden + 1) × hidden" in manifest.parameters["recurrent_formula"]


def test_export_from_checkpoint_and_evaluate_the_bundle(trained, tmp_path, capsys):
    folder, _ = trained
    store = tmp_path / "exported"  # its own store: the test passes in any order
    argv = ["export", "--checkpoint", str(folder / "run"), "--name", "cli-model", "--store", str(store)]
    assert main([*argv, "--no-baseline", "--allow-weak"]) == 0
    assert list_models(store) == {"cli-model": [1]}
    trained_manifest = load_bundle(folder / "store" / "cli-model" / "1").manifest
    exported = load_bundle(store / "cli-model" / "1").manifest
    accuracy = trained_manifest.metrics.accuracy
    assert exported.metrics.accuracy == accuracy  # same weights, same split
    assert exported.training.checkpoint == str(folder / "run" / "best.pt")
    capsys.readouterr()
    assert main(["evaluate", "--bundle", str(store / "cli-model" / "1")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == accuracy and report["part"] == "test"
    assert main(["evaluate", "--checkpoint", str(folder / "run")]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == accuracy


def test_evaluate_a_bundle_on_a_data_file_scores_every_row(trained, tmp_path, capsys):
    folder, _ = trained
    rows = [("the cup match", "sport"), ("a bowl of soup", "food"), ("the match was won", "sport")]
    data = tmp_path / "held_out.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("review", "verdict"), *rows])
    bundle = folder / "store" / "cli-model" / "1"
    flags = ["--data", str(data), "--text-column", "review", "--label-column", "verdict", "--part", "all"]
    capsys.readouterr()
    assert main(["evaluate", "--bundle", str(bundle), *flags]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == len(rows) and 0 <= report["accuracy"] <= 1
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("review,verdict\nsome text,weather\n", encoding="utf-8")
    assert main(["evaluate", "--bundle", str(bundle), *flags[:1], str(unknown), *flags[2:]]) == 2


def test_export_quantize_through_the_cli_writes_the_int8_variant(trained, tmp_path):
    folder, _ = trained
    store = tmp_path / "store"
    shutil.copytree(folder / "store" / "cli-model" / "1", store / "cli-model" / "1")
    assert main(["export", "--bundle", str(store / "cli-model" / "1"), "--quantize"]) == 0
    assert list_models(store) == {"cli-model": [1, 2]}
    fp32, int8 = (load_bundle(store / "cli-model" / v).manifest for v in ("1", "2"))
    assert int8.variant == "int8" and int8.quantized_from["version"] == 1
    assert int8.metrics.extra["fp32_accuracy"] == fp32.metrics.accuracy
    assert int8.training == fp32.training and int8.data_source == fp32.data_source
    assert main(["export", "--bundle", str(store / "cli-model" / "2"), "--quantize"]) == 2  # already int8
    assert main(["export", "--bundle", str(store / "cli-model" / "1")]) == 2  # nothing new without --quantize


def test_bad_input_exits_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--name", "x", "--pooling", "attention", "--data", "x.csv"])
    assert "invalid choice" in capsys.readouterr().err
    assert (
        main(["train", "--name", "x", "--data", str(tmp_path / "missing.csv"), "--store", str(tmp_path)]) == 2
    )
    assert main(["train", "--name", "x", "--store", str(tmp_path)]) == 2


def test_lstm_train_is_its_own_console_script():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads(
        (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    )
    scripts = project["project"]["scripts"]
    assert scripts["lstm-train"] == "training.cli:main"
    assert scripts["lstm-service"].split(":")[0].split(".")[0] == "service"


def test_help_and_argument_errors_import_no_torch():
    script = (
        "import sys\n"
        "from training.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "finally:\n"
        "    print('torch imported:', 'torch' in sys.modules)\n"
    )
    shown = subprocess.run([sys.executable, "-c", script, "train", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "usage: lstm-train train" in shown.stdout
    assert "torch imported: False" in shown.stdout
    refused = subprocess.run([sys.executable, "-c", script, "export"], capture_output=True, text=True)
    assert (
        refused.returncode == 2 and "one of the arguments --checkpoint --bundle is required" in refused.stderr
    )
    assert "torch imported: False" in refused.stdout


def test_a_serving_only_install_is_told_what_to_install():
    # torch, scikit-learn and iterative-stratification made unimportable, as on a serving-only install
    script = (
        "import sys\n"
        "for name in ('torch', 'sklearn', 'iterstrat', 'gensim'):\n"
        "    sys.modules[name] = None\n"
        "from training.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    data = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "tiny-en.csv"
    argv = ["train", "--data", str(data), "--name", "never-written"]
    refused = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "needs the training dependencies (missing: torch)" in refused.stderr
    assert "pip install -e '.[train]'" in refused.stderr and "Traceback" not in refused.stderr
