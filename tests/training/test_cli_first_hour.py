"""``lstm-train`` as a new user meets it: checks before work, retraining an existing model, one store,
evaluate/export that do what their help says, help without noise."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from service.bundle import (
    DEFAULT_MODEL_STORE,
    STORE_VARIABLE,
    Metrics,
    default_store,
    list_models,
    load_bundle,
    promoted_versions,
)
from service.settings import Settings
from training.cli import build_parser, main
from training.data import preflight

SMALL = ["--embedding-dim", "8", "--hidden-dim", "8", "--epochs", "2", "--batch-size", "16"]
SMALL += ["--lr", "0.01", "--threads", "1", "--no-progress", "--no-baseline", "--allow-weak"]


def _write_csv(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])
    return path


@pytest.fixture(scope="module")
def first(tmp_path_factory, tiny_dataset):
    """A store holding version 1 of ``tickets``, trained by the CLI, and its data file."""
    folder = tmp_path_factory.mktemp("first-hour")
    data = _write_csv(folder / "tickets.csv", tiny_dataset("en", per_label=20))
    store = folder / "store"
    argv = ["train", "--data", str(data), "--name", "tickets", "--store", str(store)]
    assert main([*argv, "--run-dir", str(folder / "run"), *SMALL]) == 0
    return folder, data, store


def _copy_store(first, tmp_path) -> Path:
    store = tmp_path / "store"
    shutil.copytree(first[2], store)
    return store


# ----------------------------------------------------------------------------------- checks before work


def test_an_invalid_name_is_refused_before_training_and_leaves_nothing(
    tmp_path, tiny_dataset, caplog, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    data = _write_csv(tmp_path / "d.csv", tiny_dataset("en", per_label=10))
    with caplog.at_level(logging.INFO):
        assert main(["train", "--data", str(data), "--name", "bad/name", "--store", "store", *SMALL]) == 2
    assert "--name: invalid model name 'bad/name'" in caplog.text
    assert "epoch" not in caplog.text.lower()  # refused before any training
    assert sorted(path.name for path in tmp_path.iterdir()) == ["d.csv"]  # no runs/, no store/


def test_an_existing_version_is_refused_before_training(first, tmp_path, caplog):
    store = _copy_store(first, tmp_path)
    argv = ["train", "--data", str(first[1]), "--name", "tickets", "--store", str(store), "--version", "1"]
    with caplog.at_level(logging.INFO):
        assert main([*argv, "--run-dir", str(tmp_path / "run"), *SMALL]) == 2
    assert "tickets version 1 already exists" in caplog.text and "leave out --version" in caplog.text
    assert "epoch" not in caplog.text.lower() and not (tmp_path / "run").exists()


def test_a_wrong_column_and_an_unwritable_store_are_refused_before_training(first, tmp_path, caplog):
    (tmp_path / "a-file").write_text("x")
    with caplog.at_level(logging.INFO):
        argv = ["train", "--data", str(first[1]), "--name", "x", "--run-dir", str(tmp_path / "run")]
        assert main([*argv, "--store", str(tmp_path / "a-file"), *SMALL]) == 2
        assert main([*argv, "--store", str(tmp_path / "s"), "--text-column", "body", *SMALL]) == 2
    assert "model store" in caplog.text and "is a file" in caplog.text
    assert "--text-column" in caplog.text
    assert not (tmp_path / "run").exists() and not (tmp_path / "s").exists()


# ----------------------------------------------------------------------------------- retraining


def test_retraining_says_so_up_front_and_other_labels_need_force(first, tmp_path, tiny_dataset, caplog):
    store = _copy_store(first, tmp_path)
    other = _write_csv(
        tmp_path / "other.csv", [(text, f"x-{label}") for text, label in tiny_dataset("en", 20)]
    )
    argv = ["train", "--data", str(other), "--name", "tickets", "--store", str(store)]
    argv += ["--run-dir", str(tmp_path / "run"), *SMALL]
    with caplog.at_level(logging.INFO):
        assert main(argv) == 2
    assert "tickets version 1 serves the labels ['food', 'sport', 'tech']" in caplog.text
    assert "--force" in caplog.text and list_models(store) == {"tickets": [1]}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main([*argv, "--force"]) == 0
    assert "new version 2 of tickets" in caplog.text and "served on restart" in caplog.text
    assert list_models(store) == {"tickets": [1, 2]}


def test_no_promote_writes_a_version_the_service_does_not_serve(first, tmp_path, capsys):
    store = _copy_store(first, tmp_path)
    argv = ["train", "--data", str(first[1]), "--name", "tickets", "--store", str(store), "--no-promote"]
    assert main([*argv, "--run-dir", str(tmp_path / "run"), *SMALL]) == 0
    assert load_bundle(store / "tickets" / "2").manifest.promoted is False
    assert promoted_versions(store, "tickets") == [1]
    out = capsys.readouterr().out
    assert f"bundle folder: {store.resolve() / 'tickets' / '2'}" in out
    assert f"--model-store {store.resolve()} --pinned tickets=2" in out


def test_a_worse_new_version_is_warned_about(first, caplog):
    store = first[2]
    served = load_bundle(store / "tickets" / "1").manifest
    plan = preflight.Plan(store, "tickets", 2, store, splits=None, serving=1, serving_manifest=served)  # type: ignore[arg-type]
    worse = replace(
        served,
        version=2,
        metrics=Metrics.from_dict({"accuracy": 0.25, "baseline": {"accuracy": 0.5}}),
    )
    with caplog.at_level(logging.WARNING):
        warnings = preflight.compare(plan, worse, store / "tickets" / "2")
    assert any("below the TF-IDF baseline's 0.5" in warning for warning in warnings)
    assert any(f"below version 1's {served.metrics.accuracy}" in warning for warning in warnings)
    assert any("LSTM_SERVICE_PINNED=tickets=1" in warning for warning in warnings)
    assert preflight.compare(plan, served, store) == []  # as good as the one serving: nothing to say


# ----------------------------------------------------------------------------------- one store


def test_train_serve_and_evaluate_resolve_the_same_store(first, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(STORE_VARIABLE, raising=False)
    assert Settings.model_fields["model_store"].default == DEFAULT_MODEL_STORE == default_store()
    store = tmp_path / "shared-store"
    monkeypatch.setenv(STORE_VARIABLE, str(store))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # training from another folder writes to the same store
    assert main(["train", "--data", str(first[1]), "--name", "tickets", *SMALL]) == 0
    assert list_models(store) == {"tickets": [1]} and not (elsewhere / "model_store").exists()
    out = capsys.readouterr().out
    assert f"bundle folder: {store.resolve() / 'tickets' / '1'}" in out
    assert "serve it: lstm-service serve " in out and "--model-store" not in out  # the default store
    assert Settings().model_store == store.resolve()  # the service reads the same variable
    assert main(["evaluate", "--bundle", "tickets"]) == 0  # a bare name, in the same store
    assert json.loads(capsys.readouterr().out)["model"] == str(store.resolve() / "tickets" / "1")


# ----------------------------------------------------------------------------------- evaluate, export


def test_evaluate_data_alone_scores_every_row_and_a_model_folder_means_its_version(first, capsys, caplog):
    folder, data, store = first
    capsys.readouterr()
    with caplog.at_level(logging.INFO):
        assert main(["evaluate", "--bundle", str(store / "tickets"), "--data", str(data)]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = sum(1 for _ in data.open(encoding="utf-8")) - 1
    assert report["texts"] == report["count"] == rows and report["part"] == "all"
    assert report["scored"] == f"every row of {data}"
    assert report["model"] == str(store / "tickets" / "1")
    assert main(["evaluate", "--bundle", str(store / "tickets")]) == 0  # no data: the recorded test split
    report = json.loads(capsys.readouterr().out)
    assert report["part"] == "test" and report["scored"].startswith("the test split of ")


def test_export_quantize_serves_int8_only_when_promoted_and_takes_moved_data(first, tmp_path, caplog):
    store = _copy_store(first, tmp_path)
    moved = str(shutil.copy(first[1], tmp_path / "moved.csv"))
    # the recorded file is where it was: int8 written, not served
    assert main(["export", "--bundle", str(store / "tickets" / "1"), "--quantize"]) == 0
    assert load_bundle(store / "tickets" / "2").manifest.promoted is False
    assert promoted_versions(store, "tickets") == [1]
    assert main(["export", "--bundle", str(store / "tickets" / "1"), "--quantize", "--promote"]) == 0
    assert promoted_versions(store, "tickets") == [3, 1]
    # the recorded file moved: the error says to pass --data, and --data works
    recorded = Path(load_bundle(store / "tickets" / "1").manifest.data_source.data)
    hidden = recorded.with_suffix(".away")
    recorded.rename(hidden)
    try:
        with caplog.at_level(logging.ERROR):
            assert main(["export", "--bundle", str(store / "tickets" / "1"), "--quantize"]) == 2
        assert "no such data file" in caplog.text and "pass it again: --data FILE" in caplog.text
        assert main(["export", "--bundle", str(store / "tickets" / "1"), "--quantize", "--data", moved]) == 0
    finally:
        hidden.rename(recorded)
    assert list_models(store) == {"tickets": [1, 2, 3, 4]}


# ----------------------------------------------------------------------------------- help, noise


def _options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _options(sub)
        elif action.option_strings and action.dest != "help":
            yield parser, action


def test_every_option_has_help_and_no_default_is_said_twice(capsys):
    parser = build_parser()
    missing = [action.option_strings[0] for _, action in _options(parser) if not action.help]
    assert missing == []
    for command in ("train", "export", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = re.sub(r"\s+", " ", capsys.readouterr().out)
        options = re.split(r" (?=--[a-z])", text)
        assert [option for option in options if option.count("(default:") > 1] == []
        baseline = [option for option in options if option.startswith("--no-baseline ")]
        assert all("(default:" not in option for option in baseline)
        assert "(default: ())" not in text


def test_export_prints_no_known_harmless_warnings(capfd, tmp_path):
    from training.export import graph as export
    from training.model.classifier import LSTMClassifier, ModelConfig

    model = LSTMClassifier(ModelConfig(embedding_dim=8, hidden_dim=8).sized(20, 2)).eval()
    path = export.export_onnx(model, tmp_path / "model.onnx")
    export.quantize_int8(path, tmp_path / "int8.onnx")
    err = capfd.readouterr().err
    assert "prim::PackPadded" not in err and "PadPacked" not in err
    assert "pre-processing before quantization" not in err
