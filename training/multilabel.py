"""Multi-label classification: label sets, the stratified split, thresholds, metrics and the baseline.

A multi-label text carries a set of labels (possibly empty: all-negative). The model scores each label
with its own sigmoid; a label is predicted when its score reaches that label's threshold, tuned on dev.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

# iterative-stratification and scikit-learn (the train extra) are imported where they are used, so that
# `lstm-train --help` and its argument errors work, and say what is missing, on a serving-only install.

logger = logging.getLogger(__name__)

TASKS = ("single-label", "multi-label")
DEFAULT_SEPARATOR = "|"
DEFAULT_THRESHOLD = 0.5
# a label with fewer positive dev texts than this keeps DEFAULT_THRESHOLD: a threshold tuned on one or two
# examples fits those examples, not the label
MIN_TUNING_SUPPORT = 5
THRESHOLD_GRID = tuple(round(value, 2) for value in np.arange(0.05, 0.951, 0.05))
BASELINE_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def parse_label_set(value: Any, separator: str = DEFAULT_SEPARATOR) -> tuple[str, ...]:
    """A label cell → its labels, in order, without blanks or repeats. A string is split on ``separator``
    (CSV/TSV); a list (JSONL) is taken as it is; ``None``, ``""`` and ``[]`` are the empty set."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        items: Iterable[Any] = value
    elif isinstance(value, str):
        items = value.split(separator) if separator else [value]
    else:
        items = [value]
    labels: list[str] = []
    for item in items:
        label = "" if item is None else str(item).strip()
        if label and label not in labels:
            labels.append(label)
    return tuple(labels)


def label_matrix(label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """(texts, labels) float32 0/1; labels outside ``labels`` are ignored."""
    index = {label: position for position, label in enumerate(labels)}
    matrix = np.zeros((len(label_sets), len(labels)), dtype=np.float32)
    for row, label_set in enumerate(label_sets):
        for label in label_set:
            if label in index:
                matrix[row, index[label]] = 1.0
    return matrix


def looks_multilabel(label_sets: Sequence[Sequence[str]]) -> bool:
    """True when some text has no label or more than one (single-label data has exactly one each)."""
    return any(len(label_set) != 1 for label_set in label_sets)


def stratified_split(
    label_sets: Sequence[Sequence[str]],
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 13,
) -> tuple[list[int], list[int], list[int]]:
    """Indices of train/dev/test by iterative stratification on the label sets (Sechidis et al. 2011, the
    ``iterative-stratification`` package): test is cut first, then dev from the rest, each preserving
    every label's share as far as the counts allow."""
    count = len(label_sets)
    labels = sorted({label for label_set in label_sets for label in label_set})
    matrix = label_matrix(label_sets, labels).astype(int)
    everything = np.arange(count)
    _, dev_share, test_share = ratios
    rest, test = _cut(everything, matrix, test_share, seed)
    dev_of_rest = dev_share / (1.0 - test_share) if test_share < 1 else 0.0
    train, dev = _cut(rest, matrix, dev_of_rest, seed + 1)
    return sorted(train.tolist()), sorted(dev.tolist()), sorted(test.tolist())


def _cut(indices: np.ndarray, matrix: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    wanted = round(len(indices) * share)
    if wanted == 0:
        return indices, indices[:0]
    if wanted >= len(indices):
        return indices[:0], indices
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=wanted, random_state=seed)
    keep, cut = next(splitter.split(np.zeros(len(indices)), matrix[indices]))
    return indices[keep], indices[cut]


def label_spread(parts: dict[str, Sequence[Sequence[str]]], labels: Sequence[str]) -> dict[str, Any]:
    """How each label (and the empty set) is spread over the parts: counts and each part's share."""
    spread: dict[str, Any] = {}
    totals = dict.fromkeys(labels, 0)
    counts = {part: label_matrix(sets, labels).sum(axis=0).astype(int) for part, sets in parts.items()}
    for label_index, label in enumerate(labels):
        totals[label] = int(sum(counts[part][label_index] for part in parts))
        spread[label] = {
            **{part: int(counts[part][label_index]) for part in parts},
            "share": {
                part: round(int(counts[part][label_index]) / totals[label], 3) if totals[label] else None
                for part in parts
            },
        }
    spread["(none)"] = {part: sum(1 for label_set in sets if not label_set) for part, sets in parts.items()}
    return spread


def tune_thresholds(
    targets: np.ndarray,
    scores: np.ndarray,
    labels: Sequence[str],
    min_support: int = MIN_TUNING_SUPPORT,
    default: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Per label, the threshold from :data:`THRESHOLD_GRID` that maximises that label's F1 on dev (ties:
    the one nearest ``default``). Labels with fewer than ``min_support`` positive dev texts keep
    ``default``. Returns ``{"thresholds": {label: t}, "tuned": [...], "kept_default": [...], ...}``."""
    from sklearn.metrics import f1_score

    thresholds: dict[str, float] = {}
    tuned, kept = [], []
    for column, label in enumerate(labels):
        truth = targets[:, column] > 0.5
        if int(truth.sum()) < min_support:
            thresholds[label] = default
            kept.append(label)
            continue
        best = (-1.0, 0.0, default)
        for threshold in THRESHOLD_GRID:
            predicted = scores[:, column] >= threshold
            f1 = float(f1_score(truth, predicted, zero_division=0))
            key = (f1, -abs(threshold - default), threshold)
            if key[:2] > best[:2]:
                best = key
        thresholds[label] = float(best[2])
        tuned.append(label)
    return {
        "thresholds": thresholds,
        "tuned_on": "dev",
        "tuned": tuned,
        "kept_default": kept,
        "default": default,
        "min_support": min_support,
        "grid": [THRESHOLD_GRID[0], THRESHOLD_GRID[-1], 0.05],
    }


def check_thresholds(thresholds: dict[str, float], labels: Sequence[str]) -> None:
    """Every label has a threshold strictly between 0 and 1 (0 would predict every label, 1 none)."""
    missing = [label for label in labels if label not in thresholds]
    if missing:
        raise ValueError(f"no threshold for the labels {missing}")
    bad = {label: value for label, value in thresholds.items() if not 0.0 < float(value) < 1.0}
    if bad:
        raise ValueError(f"thresholds must lie strictly between 0 and 1, got {bad}")


def predict(scores: np.ndarray, thresholds: dict[str, float], labels: Sequence[str]) -> np.ndarray:
    """(texts, labels) bool: score >= that label's threshold."""
    return scores >= np.asarray([thresholds[label] for label in labels], dtype=scores.dtype)


def multilabel_metrics(targets: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Micro- and macro-F1, subset accuracy (every label of a text right; also under ``accuracy``),
    Hamming loss (share of wrong label decisions) and per-label precision/recall/F1/support."""
    from sklearn.metrics import f1_score, hamming_loss, precision_recall_fscore_support

    truth, guess = targets.astype(bool), predicted.astype(bool)
    if not len(truth):
        return {"accuracy": None, "macro_f1": None, "count": 0}
    precision, recall, f1, support = precision_recall_fscore_support(truth, guess, zero_division=0)
    subset = float((truth == guess).all(axis=1).mean())
    return {
        "accuracy": round(subset, 4),
        "subset_accuracy": round(subset, 4),
        "micro_f1": round(float(f1_score(truth, guess, average="micro", zero_division=0)), 4),
        "macro_f1": round(float(f1_score(truth, guess, average="macro", zero_division=0)), 4),
        "hamming_loss": round(float(hamming_loss(truth, guess)), 4),
        "count": int(len(truth)),
        "per_class": {
            label: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
    }


def positive_weights(targets: np.ndarray, cap: float = 100.0) -> np.ndarray:
    """Per label negatives / positives (capped; 1 for a label without positives): the ``pos_weight`` of
    binary cross-entropy that makes a rare label's positives count as much as its negatives."""
    positives = targets.sum(axis=0)
    negatives = len(targets) - positives
    weights = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
    return np.clip(weights, 1.0, cap).astype(np.float32)


def ovr_baseline(
    vectorizer: Any,  # a fitted-to-be sklearn TfidfVectorizer
    train: tuple[Sequence[str], np.ndarray],
    dev: tuple[Sequence[str], np.ndarray],
    test: tuple[Sequence[str], np.ndarray],
    labels: Sequence[str],
    features: str,
) -> dict[str, Any]:
    """One-vs-rest TF-IDF + logistic regression on the same split: C chosen by dev micro-F1 after each
    label's threshold is tuned on dev exactly as the model's are; returns its test metrics."""
    try:
        train_x = vectorizer.fit_transform(train[0])
    except ValueError:  # min_df left no features (tiny data sets)
        vectorizer.set_params(min_df=1)
        train_x = vectorizer.fit_transform(train[0])
    dev_x, test_x = vectorizer.transform(dev[0]), vectorizer.transform(test[0])
    best: tuple[float, float, dict[str, Any], np.ndarray] | None = None
    for c in BASELINE_C_GRID:
        dev_scores = _ovr_scores(train_x, train[1], dev_x, c)
        tuning = tune_thresholds(dev[1], dev_scores, labels)
        dev_f1 = multilabel_metrics(dev[1], predict(dev_scores, tuning["thresholds"], labels), labels)
        if best is None or dev_f1["micro_f1"] > best[0]:
            best = (dev_f1["micro_f1"], c, tuning, _ovr_scores(train_x, train[1], test_x, c))
    assert best is not None
    dev_micro_f1, c, tuning, test_scores = best
    report = multilabel_metrics(test[1], predict(test_scores, tuning["thresholds"], labels), labels)
    report.update(
        {
            "model": "one-vs-rest tfidf+logistic-regression",
            "features": features,
            "C": c,
            "dev_micro_f1": round(dev_micro_f1, 4),
            "thresholds": tuning["thresholds"],
            "vocabulary_size": len(vectorizer.vocabulary_),
        }
    )
    logger.info("baseline one-vs-rest TF-IDF+LR (C=%s): dev micro-F1 %.4f", c, dev_micro_f1)
    return report


def _ovr_scores(train_x: Any, train_y: np.ndarray, other_x: Any, c: float) -> np.ndarray:
    """Each label's own logistic regression; a label constant in training scores that constant."""
    from sklearn.linear_model import LogisticRegression

    scores = np.zeros((other_x.shape[0], train_y.shape[1]), dtype=np.float64)
    for column in range(train_y.shape[1]):
        target = train_y[:, column] > 0.5
        if target.all() or not target.any():
            scores[:, column] = float(target[0]) if len(target) else 0.0
            continue
        classifier = LogisticRegression(C=c, max_iter=2000).fit(train_x, target)
        scores[:, column] = classifier.predict_proba(other_x)[:, 1]
    return scores
