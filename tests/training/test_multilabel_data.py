"""Multi-label data end to end through the reader and the splitter: separators, JSONL lists, empty label
sets, task inference, the spread report, and the refusals that say how to fix the data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from training.data.datasets.make_multilabel import generate, write
from training.data.reading import DataError, Example, read_labelled
from training.data.source import DataSpec
from training.data.splits import make_given_splits


def test_csv_with_a_configured_separator_and_empty_cells(tmp_path: Path, caplog) -> None:
    path = tmp_path / "tags.tsv"
    path.write_text("text\ttags\nred apple\tfruit;red\nplain text\t\nbanana\tfruit\n", encoding="utf-8")
    with caplog.at_level(logging.INFO):
        examples, task = read_labelled(path, label_column="tags", separator=";")
    assert task == "multi-label" and "task multi-label (inferred" in caplog.text
    assert [e.labels for e in examples] == [("fruit", "red"), (), ("fruit",)]


def test_jsonl_lists_are_label_sets(tmp_path: Path) -> None:
    path = tmp_path / "tags.jsonl"
    rows = [{"text": "a", "labels": ["x", "y"]}, {"text": "b", "labels": []}, {"text": "c", "labels": ["y"]}]
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    examples, task = read_labelled(path, label_column="labels")
    assert task == "multi-label" and [e.labels for e in examples] == [("x", "y"), (), ("y",)]


def test_single_label_csv_is_inferred_single_label(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("text,label\na,x\nb,y\nc,\n", encoding="utf-8")
    examples, task = read_labelled(path)
    assert task == "single-label" and [e.label for e in examples] == ["x", "y"]  # empty label skipped


def test_split_reports_texts_without_label_and_each_labels_spread(tmp_path: Path) -> None:
    path = write(generate(300, seed=2), tmp_path / "tags.csv")
    splits = DataSpec(data=str(path), label_column="labels", seed=0).load()
    assert splits.task == "multi-label"
    report = splits.report
    assert sum(report["texts_without_label"].values()) == sum(
        1 for _, labels in generate(300, 2) if not labels
    )
    assert set(splits.labels) == {"health", "music", "politics", "sports", "tech", "travel"}
    for label in splits.labels:
        spread = report["label_spread"][label]
        assert spread["train"] > spread["dev"] > 0 and spread["test"] > 0
    assert len(splits.targets("train")[0]) == len(splits.labels)


def test_multi_label_asked_on_one_label_per_text_proceeds_and_says_so(tmp_path: Path, caplog) -> None:
    path = tmp_path / "plain.csv"
    rows = "".join(f"text {i} {'ab'[i % 2]},{'ab'[i % 2]}\n" for i in range(40))
    path.write_text("text,label\n" + rows, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        splits = DataSpec(data=str(path), task="multi-label", seed=0).load()
    assert splits.task == "multi-label" and "every text has exactly one label" in caplog.text


def test_a_row_whose_labels_are_all_unknown_to_training_is_refused() -> None:
    train = [Example("a", labels=("x",)), Example("b", labels=()), Example("c", labels=("y",))]
    dev = [Example("d", labels=("x", "z")), Example("e", labels=("z",))]
    with pytest.raises(DataError, match=r"only labels no training text has \(\['z'\]\).*add training texts"):
        make_given_splits(train, dev, [], task="multi-label")
    splits = make_given_splits(train, dev[:1], [], task="multi-label")  # 'z' dropped, 'x' kept
    assert splits.dev[0].labels == ("x",) and splits.report["unknown_labels_dropped"] == {"z": 1}


def test_a_label_on_every_training_text_and_a_single_class_are_refused() -> None:
    train = [Example("a", labels=("x",)), Example("b", labels=("x", "y"))]
    with pytest.raises(DataError, match=r"\['x'\] are on every training text"):
        make_given_splits(train, [Example("c", labels=("x",))], [], task="multi-label")
    single = [Example("a", "x"), Example("b", "x")]
    with pytest.raises(DataError, match="at least two labels"):
        make_given_splits(single, [Example("c", "x")], [])
