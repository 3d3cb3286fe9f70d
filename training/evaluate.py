"""Metrics (scikit-learn) and the TF-IDF + logistic-regression baseline, as plain JSON-able dicts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from service.tokenizer import Tokenizer

logger = logging.getLogger(__name__)

BASELINE_C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def classification_metrics(
    targets: Sequence[int], predictions: Sequence[int], labels: Sequence[str] | None
) -> dict[str, Any]:
    """Accuracy and macro-F1; with ``labels`` also per-class precision/recall/F1/support and the confusion
    matrix (rows = true label, columns = predicted, in ``labels`` order)."""
    targets, predictions = np.asarray(targets), np.asarray(predictions)
    report: dict[str, Any] = {
        "accuracy": round(float(accuracy_score(targets, predictions)), 4) if len(targets) else None,
        "macro_f1": round(float(f1_score(targets, predictions, average="macro", zero_division=0)), 4)
        if len(targets)
        else None,
        "count": int(len(targets)),
    }
    if labels is not None and len(targets):
        indices = list(range(len(labels)))
        precision, recall, f1, support = precision_recall_fscore_support(
            targets, predictions, labels=indices, zero_division=0
        )
        report["macro_f1"] = round(
            float(f1_score(targets, predictions, labels=indices, average="macro", zero_division=0)), 4
        )
        report["per_class"] = {
            label: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        }
        report["confusion_matrix"] = {
            "labels": list(labels),
            "matrix": confusion_matrix(targets, predictions, labels=indices).tolist(),
        }
    return report


def baseline_vectorizer(tokenizer: Tokenizer) -> TfidfVectorizer:
    """Char 1–2-grams for char tokenizers; the tokenizer's own words (regex + jieba) for ``word``."""
    common = {"sublinear_tf": True, "min_df": 2, "lowercase": tokenizer.lowercase}
    if tokenizer.mode in ("char", "char-bigram"):
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 2), **common)
    return TfidfVectorizer(analyzer=tokenizer.keys, **common)


def tfidf_baseline(
    tokenizer: Tokenizer,
    train: tuple[Sequence[str], Sequence[int]],
    dev: tuple[Sequence[str], Sequence[int]],
    test: tuple[Sequence[str], Sequence[int]],
    labels: Sequence[str],
) -> dict[str, Any]:
    """TF-IDF + LogisticRegression on the same split, C picked by dev accuracy; returns its test metrics."""
    vectorizer = baseline_vectorizer(tokenizer)
    try:
        train_x = vectorizer.fit_transform(train[0])
    except ValueError:  # min_df=2 left no features (tiny data sets)
        vectorizer.set_params(min_df=1)
        train_x = vectorizer.fit_transform(train[0])
    dev_x = vectorizer.transform(dev[0])
    best = None
    for c in BASELINE_C_GRID:
        classifier = LogisticRegression(C=c, max_iter=2000).fit(train_x, train[1])
        accuracy = float(accuracy_score(dev[1], classifier.predict(dev_x)))
        if best is None or accuracy > best[0]:
            best = (accuracy, c, classifier)
    dev_accuracy, c, classifier = best
    report = (
        classification_metrics(test[1], classifier.predict(vectorizer.transform(test[0])), labels)
        if len(test[0])
        else {"accuracy": None, "macro_f1": None, "count": 0}
    )
    features = (
        "char 1-2-grams" if tokenizer.mode != "word" else "word unigrams (tokenizer words, jieba for CJK)"
    )
    report.update(
        {
            "model": "tfidf+logistic-regression",
            "features": features,
            "C": c,
            "dev_accuracy": round(dev_accuracy, 4),
            "min_df": vectorizer.min_df,
            "sublinear_tf": True,
            "vocabulary_size": len(vectorizer.vocabulary_),
        }
    )
    logger.info(
        "baseline TF-IDF+LR (%s, C=%s): dev %.4f, test %s", features, c, dev_accuracy, report["accuracy"]
    )
    return report
