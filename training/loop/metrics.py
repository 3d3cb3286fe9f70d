"""The figures of a model's predictions against the truth, as plain JSON-able dicts (scikit-learn).

- single-label: accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix;
- multi-label: micro/macro-F1, subset accuracy, Hamming loss and the same per-class report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# scikit-learn (the train extra) is imported where it is used, so that `lstm-train --help` works on a
# serving-only install.


def per_class_report(
    labels: Sequence[str], truth: Any, guess: Any, indices: Sequence[int] | None = None
) -> dict[str, dict[str, Any]]:
    """Each label's precision, recall, F1 and support: ``truth``/``guess`` are class indices (then
    ``indices`` names the classes in ``labels`` order) or (texts, labels) 0/1 matrices."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        truth, guess, labels=indices, zero_division=0
    )
    return {
        label: {
            "precision": round(float(p), 4),
            "recall": round(float(r), 4),
            "f1": round(float(f), 4),
            "support": int(s),
        }
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }


def classification_metrics(
    targets: Sequence[int], predictions: Sequence[int], labels: Sequence[str] | None
) -> dict[str, Any]:
    """Accuracy and macro-F1; with ``labels`` also per-class precision/recall/F1/support and the confusion
    matrix (rows = true label, columns = predicted, in ``labels`` order)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

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
        report["macro_f1"] = round(
            float(f1_score(targets, predictions, labels=indices, average="macro", zero_division=0)), 4
        )
        report["per_class"] = per_class_report(labels, targets, predictions, indices)
        report["confusion_matrix"] = {
            "labels": list(labels),
            "matrix": confusion_matrix(targets, predictions, labels=indices).tolist(),
        }
    return report


def multilabel_metrics(targets: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Micro- and macro-F1, subset accuracy (every label of a text right; also under ``accuracy``),
    Hamming loss (share of wrong label decisions) and per-label precision/recall/F1/support."""
    from sklearn.metrics import f1_score, hamming_loss

    truth, guess = targets.astype(bool), predicted.astype(bool)
    if not len(truth):
        return {"accuracy": None, "macro_f1": None, "count": 0}
    subset = float((truth == guess).all(axis=1).mean())
    return {
        "accuracy": round(subset, 4),
        "subset_accuracy": round(subset, 4),
        "micro_f1": round(float(f1_score(truth, guess, average="micro", zero_division=0)), 4),
        "macro_f1": round(float(f1_score(truth, guess, average="macro", zero_division=0)), 4),
        "hamming_loss": round(float(hamming_loss(truth, guess)), 4),
        "count": int(len(truth)),
        "per_class": per_class_report(labels, truth, guess),
    }
