"""The training side of a new user's first hour: labels, messages, progress, threads, the publishing floor,
version claims, Ctrl-C and ``--resume``."""

from __future__ import annotations

import codecs
import csv
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.bundle import list_models, load_bundle
from training.cli import build_parser, main
from training.data import progress
from training.data.advice import warn_about_texts
from training.data.datasets.make_multilabel import generate, write
from training.data.labels import tidy_labels
from training.data.reading import DataError, Example, read_file
from training.data.source import DataSpec
from training.loop.baseline import sample_training
from training.loop.objectives import Objective

REPOSITORY = Path(__file__).resolve().parents[2]
TINY = ["--embedding-dim", "8", "--hidden-dim", "8", "--batch-size", "16", "--lr", "0.01"]
TINY += ["--threads", "1", "--no-progress", "--no-baseline"]


def _csv(path: Path, rows, header=("text", "label"), delimiter=",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter=delimiter).writerows([header, *rows])
    return path


# ----------------------------------------------------------------------------------- labels


def test_case_variants_are_refused_by_default_naming_both_options(tmp_path, tiny_dataset):
    rows = tiny_dataset("en", per_label=10) + [("a late invoice", "Sport"), ("another", "SPORT")]
    path = _csv(tmp_path / "d.csv", rows)
    with pytest.raises(DataError) as refused:
        DataSpec(data=str(path)).load()
    message = str(refused.value)
    assert "differ only by case" in message and "'sport' (10) / 'SPORT' (1) / 'Sport' (1)" in message
    assert "--fold-label-case" in message and "--keep-label-case" in message


def test_fold_label_case_merges_into_the_most_frequent_spelling_and_is_recorded(tmp_path, tiny_dataset):
    rows = tiny_dataset("en", per_label=10) + [("a late invoice", "Sport"), ("another", "SPORT")]
    path = _csv(tmp_path / "d.csv", rows)
    args = build_parser().parse_args(["train", "--data", str(path), "--name", "x", "--fold-label-case"])
    from training.cli.arguments import data_spec

    spec = data_spec(args)
    assert spec is not None and spec.extra == {"label_case": "fold"}
    splits = spec.load()
    assert "sport" in splits.labels and "Sport" not in splits.labels and "SPORT" not in splits.labels
    assert DataSpec.from_dict(spec.to_dict()).load().labels == splits.labels  # rebuilt the same way
    kept = DataSpec(data=str(path), extra={"label_case": "keep"}).load()
    assert {"sport", "Sport", "SPORT"} <= set(kept.labels)


def test_the_summary_lists_the_labels_as_served(tmp_path, tiny_dataset, capsys):
    rows = tiny_dataset("en", per_label=10) + [("a late invoice", "Sport "), ("another", "SPORT")]
    path = _csv(tmp_path / "d.csv", rows)
    argv = ["train", "--data", str(path), "--name", "t", "--store", str(tmp_path / "store")]
    argv += ["--run-dir", str(tmp_path / "run"), *TINY, "--epochs", "1", "--allow-weak", "--fold-label-case"]
    assert main(argv) == 0
    assert "labels, as the service answers them: food, sport, tech" in capsys.readouterr().out


def test_unicode_forms_are_one_label_and_said(caplog):
    examples = [Example("a", "ｂｉｌｌｉｎｇ"), Example("b", "billing"), Example("c", "other")]
    with caplog.at_level(logging.WARNING):
        tidied = tidy_labels(examples)
    assert [example.label for example in tidied] == ["billing", "billing", "other"]
    assert "NFKC" in caplog.text


def test_spaces_around_labels_are_dropped_and_said(tmp_path, caplog):
    path = _csv(tmp_path / "d.csv", [("good", "pos "), ("bad", " neg"), ("fine", "pos")])
    with caplog.at_level(logging.INFO):
        examples = read_file(path)
    assert [example.label for example in examples] == ["pos", "neg", "pos"]
    assert "spaces around labels dropped in 2 cell(s)" in caplog.text and "'pos ' → 'pos'" in caplog.text


# ----------------------------------------------------------------------------------- texts


def test_texts_mostly_longer_than_max_length_are_warned_with_the_median(caplog):
    texts = [" ".join(["word"] * 120) for _ in range(30)] + ["short text"] * 10
    with caplog.at_level(logging.WARNING):
        warnings = warn_about_texts(texts, str.split, 64)
    assert len(warnings) == 1 and "median is 120 tokens" in warnings[0] and "--max-length 64" in warnings[0]
    assert warn_about_texts(texts, str.split, 128) == []


def test_texts_that_look_like_html_are_warned_about():
    texts = ["<p>my invoice is wrong</p>", "refund please &amp; thanks", "plain words"]
    (warning,) = warn_about_texts(texts, str.split, 64)
    assert "67% of the training texts look like HTML" in warning
    assert warn_about_texts(["a < b and c > d", "x"], str.split, 64) == []


# ----------------------------------------------------------------------------------- messages


def test_a_semicolon_file_with_other_columns_names_the_delimiter_and_the_columns(tmp_path):
    path = _csv(tmp_path / "d.csv", [("good, really", "pos"), ("bad", "neg")], ("review", "verdict"), ";")
    with pytest.raises(DataError) as refused:
        read_file(path)
    message = str(refused.value)
    assert "--delimiter ';'" in message and "'review', 'verdict'" in message
    assert "--format tsv" not in message and "commas" not in message


def test_an_encoding_error_after_a_byte_order_mark_names_the_bad_byte(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"text,label\nit\x92s fine,pos\n")
    with pytest.raises(DataError) as refused:
        read_file(path)
    offset = path.read_bytes().index(b"\x92")
    assert f"byte offset {offset}, value 0x92" in str(refused.value)


# ----------------------------------------------------------------------------------- at any size


def test_progress_logs_rate_and_time_left_when_not_on_a_terminal(caplog):
    with caplog.at_level(logging.INFO, logger=progress.__name__):
        assert list(progress.track(range(5), "vocabulary", every=0.0)) == list(range(5))
    lines = [record.getMessage() for record in caplog.records]
    assert "vocabulary: 3 of 5 texts (60%)" in lines[2] and "texts/s, about" in lines[2]
    assert lines[-1].startswith("vocabulary: 5 texts in")


def test_the_baseline_samples_large_training_sets_and_says_so(caplog):
    texts, targets = [f"text {i}" for i in range(50)], np.arange(50) % 2
    with caplog.at_level(logging.INFO):
        (sampled, sampled_targets), report = sample_training((texts, targets), limit=20)
    assert len(sampled) == 20 and len(sampled_targets) == 20
    assert report == {"train_texts": 20, "sampled_from": 50} and "random 20 of the 50" in caplog.text
    assert sample_training((texts, targets), limit=50)[1] == {"train_texts": 50}


def test_threads_holds_every_library_pool(monkeypatch):
    from threadpoolctl import threadpool_info

    from training.cli import commands

    seen = []
    monkeypatch.setattr(commands, "_evaluate", lambda *args: seen.append(threadpool_info()) or 0)
    args = build_parser().parse_args(["evaluate", "--checkpoint", "x"])
    args.threads = 1
    assert commands.run(args, None, "lstm-train evaluate") == 0
    pools = seen[0]
    assert pools and all(pool["num_threads"] == 1 for pool in pools), pools


# ----------------------------------------------------------------------------------- the floor


def test_multilabel_early_stopping_uses_a_score_that_moves_before_any_threshold_is_reached():
    objective = Objective(task="multi-label")
    targets = np.asarray([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    logits = np.asarray([[-0.5, -3.0], [-3.0, -0.5], [-0.6, -2.0]])  # ranked right, every score < 0.5
    figures = objective.dev_metrics(logits, targets)
    assert figures["dev_micro_f1"] == 0.0 and figures[objective.selection_metric] == 1.0


def test_the_acceptance_multilabel_run_is_refused_with_its_fixes(tmp_path, caplog):
    path = write(generate(600), tmp_path / "ml.csv")
    argv = ["train", "--data", str(path), "--label-column", "labels", "--name", "ml"]
    argv += ["--store", str(tmp_path / "store"), "--run-dir", str(tmp_path / "run")]
    argv += ["--embedding-dim", "32", "--hidden-dim", "32", "--threads", "1", "--no-progress"]
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 2
    assert "not published: the model learned too little" in caplog.text
    assert "--epochs" in caplog.text and "--allow-weak" in caplog.text and "micro-F1" in caplog.text
    assert list_models(tmp_path / "store") == {}  # nothing served
    caplog.clear()
    assert main([*argv, "--epochs", "2", "--allow-weak"]) == 0
    floor = load_bundle(tmp_path / "store" / "ml" / "1").manifest.metrics.extra["floor"]
    assert floor["passed"] is False and floor["metric"] == "micro-F1"
    assert "published anyway" in caplog.text


def test_a_single_label_model_no_better_than_the_majority_is_refused(tmp_path, tiny_dataset, caplog):
    path = _csv(tmp_path / "d.csv", tiny_dataset("en", per_label=15))
    argv = ["train", "--data", str(path), "--name", "weak", "--store", str(tmp_path / "store")]
    argv += ["--run-dir", str(tmp_path / "run"), *TINY, "--epochs", "1", "--lr", "0.00001"]
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 2
    assert "answers the most frequent label" in caplog.text and list_models(tmp_path / "store") == {}


# ----------------------------------------------------------------------------------- versions and runs


def _cli(*argv: str, cwd: Path) -> subprocess.Popen[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    command = [sys.executable, "-m", "training.cli", *argv]
    return subprocess.Popen(command, cwd=cwd, env=environment, stderr=subprocess.PIPE, text=True)


def test_two_trainings_of_one_name_started_together_write_two_versions(tmp_path, tiny_dataset):
    path = _csv(tmp_path / "d.csv", tiny_dataset("en", per_label=15))
    argv = ["train", "--data", str(path), "--name", "same", "--store", str(tmp_path / "store")]
    argv += [*TINY, "--epochs", "2", "--allow-weak"]
    first, second = _cli(*argv, cwd=tmp_path), _cli(*argv, cwd=tmp_path)
    errors = [process.communicate(timeout=600)[1] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], errors
    assert not any("Traceback" in error for error in errors)
    assert list_models(tmp_path / "store") == {"same": [1, 2]}
    assert sorted(path.name for path in (tmp_path / "runs" / "same").iterdir()) == ["1", "2"]
    assert not list((tmp_path / "store" / "same").glob(".*.claim"))  # claims released
    for version in ("1", "2"):
        assert (tmp_path / "runs" / "same" / version / "finished.json").is_file()


def _interrupt_at_epoch(monkeypatch, epoch: int) -> None:
    from training.loop import trainer

    original = trainer._train_epoch

    def interrupted(*args, **kwargs):
        if args[6] == epoch:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "_train_epoch", interrupted)


def test_ctrl_c_says_how_to_resume_and_resume_checks_before_loading(
    tmp_path, tiny_dataset, monkeypatch, caplog
):
    monkeypatch.chdir(tmp_path)
    path = _csv(tmp_path / "d.csv", tiny_dataset("en", per_label=15))
    argv = ["train", "--data", str(path), "--name", "tickets", "--store", str(tmp_path / "store")]
    argv += [*TINY, "--epochs", "3", "--allow-weak"]
    _interrupt_at_epoch(monkeypatch, 2)
    with caplog.at_level(logging.INFO):
        assert main(argv) == 130
    lines = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(lines) == 1 and "interrupted" in lines[0] and lines[0].endswith("--allow-weak --resume")
    assert "runs/tickets/1/last.pt" in lines[0] and list_models(tmp_path / "store") == {}
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)

    caplog.clear()
    with caplog.at_level(logging.INFO):  # other settings: refused before any weight is loaded
        assert main([*argv[:-1], "--hidden-dim", "16", "--allow-weak", "--resume"]) == 2
    assert "model hidden_dim: 8 → 16" in caplog.text and "size mismatch" not in caplog.text

    explicit = [*argv, "--run-dir", str(tmp_path / "runs" / "tickets" / "1")]
    caplog.clear()
    with caplog.at_level(logging.INFO):  # the same run folder again without --resume: refused
        assert main(explicit) == 2
    assert "holds an interrupted run" in caplog.text and "--resume" in caplog.text

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main([*argv, "--resume"]) == 0
    assert "resumed from" in caplog.text and "after epoch 1" in caplog.text
    assert list_models(tmp_path / "store") == {"tickets": [1]}

    caplog.clear()
    with caplog.at_level(logging.INFO):  # a finished run: nothing to resume, no duplicate version
        assert main([*explicit, "--resume"]) == 2
    assert "finished" in caplog.text and list_models(tmp_path / "store") == {"tickets": [1]}


def test_a_new_run_beside_an_interrupted_one_says_so(tmp_path, tiny_dataset, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    path = _csv(tmp_path / "d.csv", tiny_dataset("en", per_label=15))
    argv = ["train", "--data", str(path), "--name", "t", "--store", str(tmp_path / "store")]
    argv += [*TINY, "--epochs", "2", "--allow-weak"]
    _interrupt_at_epoch(monkeypatch, 2)
    assert main(argv) == 130
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert main(argv) == 0
    assert "holds an interrupted run of t" in caplog.text and "starts afresh from epoch 1" in caplog.text
    assert list_models(tmp_path / "store") == {"t": [2]}  # runs/t/1 stays for --resume


# ----------------------------------------------------------------------------------- make run


def _make_run(**environment: str) -> str:
    variables = {key: value for key, value in os.environ.items() if key != "LSTM_SERVICE_DEFAULT_MODEL"}
    dry = subprocess.run(
        ["make", "-n", "run"],
        cwd=REPOSITORY,
        env={**variables, **environment},
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0, dry.stderr
    return dry.stdout


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_make_run_leaves_the_default_model_to_the_environment_when_it_is_set():
    assert "--default-model news-topic" in _make_run()
    served = _make_run(LSTM_SERVICE_DEFAULT_MODEL="tickets")
    assert "--default-model" not in served.splitlines()[-1]
    assert "default model: tickets (LSTM_SERVICE_DEFAULT_MODEL from the environment)" in served
