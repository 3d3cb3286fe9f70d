"""Multi-label building blocks on real numbers: label sets, the iterative-stratified split, thresholds,
metrics and the one-vs-rest baseline (no mocks; sklearn and iterative-stratification do the work)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from training.data import multilabel as ml
from training.data.datasets.make_multilabel import TOPICS, generate
from training.loop import baseline, metrics, objectives, thresholds


def test_label_sets_from_csv_cells_and_jsonl_lists() -> None:
    assert ml.parse_label_set("a|b| a |", "|") == ("a", "b")
    assert ml.parse_label_set("a;b", ";") == ("a", "b")
    assert ml.parse_label_set("", "|") == ()
    assert ml.parse_label_set(None) == ()
    assert ml.parse_label_set(["x", "y", "x", ""]) == ("x", "y")
    assert ml.parse_label_set([]) == ()
    assert not ml.looks_multilabel([("a",), ("b",)])
    assert ml.looks_multilabel([("a",), ()])
    assert ml.looks_multilabel([("a", "b")])


def test_iterative_split_keeps_every_label_in_every_part_and_reports_the_spread() -> None:
    rows = generate(600, seed=7)
    label_sets = [labels for _, labels in rows]
    train, dev, test = ml.stratified_split(label_sets, (0.8, 0.1, 0.1), seed=13)
    assert sorted(train + dev + test) == list(range(600))
    assert (len(train), len(dev), len(test)) == (480, 60, 60)
    labels = sorted(TOPICS)
    spread = ml.label_spread(
        {
            part: [label_sets[i] for i in index]
            for part, index in (("train", train), ("dev", dev), ("test", test))
        },
        labels,
    )
    for label in labels:
        total = spread[label]["train"] + spread[label]["dev"] + spread[label]["test"]
        # each part holds its share of each label within a couple of texts (rare travel included)
        assert abs(spread[label]["dev"] - total * 0.1) <= 2, (label, spread[label])
        assert abs(spread[label]["test"] - total * 0.1) <= 2, (label, spread[label])
    assert spread["(none)"]["train"] > 0 and spread["(none)"]["test"] > 0
    # the same seed gives the same split
    assert ml.stratified_split(label_sets, (0.8, 0.1, 0.1), seed=13) == (train, dev, test)


def test_thresholds_maximise_each_labels_f1_and_rare_labels_keep_the_default() -> None:
    rng = np.random.default_rng(0)
    targets = np.zeros((200, 2), dtype=np.float32)
    targets[:80, 0] = 1
    targets[:3, 1] = 1  # too rare to tune
    # label 0's positives score around 0.3, negatives around 0.1: the best threshold sits between
    scores = np.where(targets > 0, 0.3, 0.1) + rng.normal(0, 0.02, targets.shape)
    tuning = thresholds.tune_thresholds(targets, scores, ["common", "rare"])
    assert 0.1 < tuning["thresholds"]["common"] <= 0.3
    assert tuning["thresholds"]["rare"] == thresholds.DEFAULT_THRESHOLD
    assert tuning["tuned"] == ["common"] and tuning["kept_default"] == ["rare"]
    predicted = thresholds.predict(scores, tuning["thresholds"], ["common", "rare"])
    assert (predicted[:, 0] == (targets[:, 0] > 0)).all()


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, 1.5])
def test_thresholds_outside_zero_one_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        thresholds.check_thresholds({"a": 0.5, "b": bad}, ["a", "b"])
    with pytest.raises(ValueError, match="no threshold"):
        thresholds.check_thresholds({"a": 0.5}, ["a", "b"])


def test_metrics_match_hand_counts() -> None:
    truth = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    guess = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    report = metrics.multilabel_metrics(truth, guess, ["a", "b"])
    assert report["subset_accuracy"] == 0.5  # rows 0 and 3 exactly right
    assert report["hamming_loss"] == 0.25  # 2 wrong decisions of 8
    # a: tp 2, fp 0, fn 0; b: tp 1, fp 1, fn 1 → micro P = R = 3/4
    assert report["micro_f1"] == 0.75
    assert report["per_class"]["a"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert report["per_class"]["b"]["f1"] == 0.5
    assert report["macro_f1"] == 0.75


def test_positive_weights_balance_rare_labels() -> None:
    targets = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]], dtype=np.float32)
    assert objectives.positive_weights(targets).tolist() == [1.0, 3.0, 1.0]


def test_one_vs_rest_baseline_learns_the_generated_topics() -> None:
    rows = generate(400, seed=3)
    labels = sorted(TOPICS)
    texts = [text for text, _ in rows]
    matrix = ml.label_matrix([label_set for _, label_set in rows], labels)
    train, dev, test = slice(0, 300), slice(300, 350), slice(350, 400)
    report = baseline.ovr_baseline(
        TfidfVectorizer(sublinear_tf=True),
        (texts[train], matrix[train]),
        (texts[dev], matrix[dev]),
        (texts[test], matrix[test]),
        labels,
        "word unigrams",
    )
    assert report["micro_f1"] > 0.8, report
    assert set(report["thresholds"]) == set(labels)
    assert report["C"] in baseline.OVR_C_GRID
