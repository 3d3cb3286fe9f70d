"""Multi-label decisions: each label's sigmoid score against that label's threshold, tuned on dev."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_THRESHOLD = 0.5
# a label with fewer positive dev texts than this keeps DEFAULT_THRESHOLD: a threshold tuned on one or two
# examples fits those examples, not the label
MIN_TUNING_SUPPORT = 5
THRESHOLD_GRID = tuple(round(value, 2) for value in np.arange(0.05, 0.951, 0.05))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


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
