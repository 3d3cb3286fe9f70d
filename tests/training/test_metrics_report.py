"""Evaluation report: per-class figures, confusion matrix, and the TF-IDF baseline on the same split."""

from __future__ import annotations

from service.tokenizer import PAD, UNK, Tokenizer
from training.loop.baseline import baseline_vectorizer, tfidf_baseline
from training.loop.metrics import classification_metrics


def test_classification_metrics_per_class_and_confusion_matrix():
    report = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert report["accuracy"] == 0.6 and report["count"] == 5
    assert report["per_class"]["b"] == {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2}
    assert report["per_class"]["c"]["recall"] == 0.0
    assert report["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_baseline_features_follow_the_tokenizer_mode():
    char = baseline_vectorizer(Tokenizer("char", [PAD, UNK]))
    assert (char.analyzer, char.ngram_range, char.min_df, char.sublinear_tf) == ("char", (1, 2), 2, True)
    word = baseline_vectorizer(Tokenizer("word", [PAD, UNK]))
    assert word.build_analyzer()("The Cup, won") == ["the", "cup", ",", "won"]


def test_baseline_picks_c_on_dev_and_reports_test_metrics(tiny_dataset):
    rows = tiny_dataset("en", per_label=20)
    texts, labels = [t for t, _ in rows], sorted({label for _, label in rows})
    targets = [labels.index(label) for _, label in rows]
    report = tfidf_baseline(
        Tokenizer("word", [PAD, UNK]),
        (texts[:40], targets[:40]),
        (texts[40:50], targets[40:50]),
        (texts[50:], targets[50:]),
        labels,
    )
    assert report["model"] == "tfidf+logistic-regression" and report["count"] == 10
    assert report["C"] in (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0) and 0 <= report["accuracy"] <= 1
    # features and C are chosen together on dev among word 1-2-grams, char 1-3-grams and their union
    names = {"word 1-2-grams", "char 1-3-grams", "word 1-2-grams + char 1-3-grams"}
    assert set(report["dev_grid"]) == names and report["features"] in names
    assert report["dev_accuracy"] == max(max(row.values()) for row in report["dev_grid"].values())
