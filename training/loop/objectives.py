"""What training optimises and how dev picks the epoch, per task.

- single-label: softmax cross-entropy; the epoch with the best dev accuracy wins;
- multi-label: one sigmoid per label with binary cross-entropy (optionally ``pos_weight`` per label:
  negatives / positives in the training split, so a rare label's positives weigh as much as its negatives);
  the epoch with the best dev average precision (micro-averaged over every label decision) wins: a
  threshold-free score, since the per-label thresholds are tuned on dev afterwards, on the chosen weights.
  Micro-F1 at threshold 0.5 (also recorded) cannot move while no score has reached 0.5 yet, and early
  stopping on it ended runs that were still learning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from training.loop.metrics import classification_metrics, multilabel_metrics
from training.loop.thresholds import DEFAULT_THRESHOLD, sigmoid


@dataclass(frozen=True)
class Objective:
    task: str = "single-label"
    pos_weight: tuple[float, ...] | None = None  # multi-label only
    label_smoothing: float = 0.0  # single-label: torch's; multi-label: targets pulled towards 0.5

    @property
    def multi_label(self) -> bool:
        return self.task == "multi-label"

    @property
    def selection_metric(self) -> str:
        """The history key whose best value picks the epoch."""
        return "dev_average_precision" if self.multi_label else "dev_accuracy"

    def loss(self) -> nn.Module:
        if not self.multi_label:
            return nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)
        weight = None if self.pos_weight is None else torch.tensor(self.pos_weight, dtype=torch.float32)
        if self.label_smoothing:
            return SmoothedBCE(self.label_smoothing, weight)
        return nn.BCEWithLogitsLoss(pos_weight=weight)

    def targets(self, values: Sequence[Any]) -> np.ndarray:
        """Class indices (int64) for single-label; a (texts, labels) 0/1 float32 matrix for multi-label."""
        if self.multi_label:
            return np.asarray(values, dtype=np.float32)
        return np.asarray(values, dtype=np.int64)

    def dev_metrics(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        """The figures an epoch's history records, ``dev_`` prefixed."""
        if self.multi_label:
            scores = sigmoid(logits)
            names = [str(column) for column in range(targets.shape[1])]
            figures = multilabel_metrics(targets, scores >= DEFAULT_THRESHOLD, names)
            return {
                "dev_average_precision": _micro_average_precision(targets, scores),
                "dev_micro_f1": figures["micro_f1"],
                "dev_macro_f1": figures["macro_f1"],
                "dev_subset_accuracy": figures["subset_accuracy"],
            }
        figures = classification_metrics(targets, logits.argmax(axis=1), None)
        return {"dev_accuracy": figures["accuracy"], "dev_macro_f1": figures["macro_f1"]}

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "loss": "binary cross-entropy (sigmoid per label)" if self.multi_label else "cross-entropy",
            "pos_weight": list(self.pos_weight) if self.pos_weight is not None else None,
            "selected_by": self.selection_metric,
            **({"label_smoothing": self.label_smoothing} if self.label_smoothing else {}),
        }


class SmoothedBCE(nn.Module):
    """Binary cross-entropy against targets ``t * (1 - s) + s / 2``: each label's 0/1 target moves ``s/2``
    towards 0.5, the two-class form of label smoothing."""

    def __init__(self, smoothing: float, pos_weight: torch.Tensor | None) -> None:
        super().__init__()
        self.smoothing = smoothing
        self.loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, targets * (1 - self.smoothing) + self.smoothing / 2)


def positive_weights(targets: np.ndarray, cap: float = 100.0) -> np.ndarray:
    """Per label negatives / positives (capped; 1 for a label without positives): the ``pos_weight`` of
    binary cross-entropy that makes a rare label's positives count as much as its negatives."""
    positives = targets.sum(axis=0)
    negatives = len(targets) - positives
    weights = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
    return np.clip(weights, 1.0, cap).astype(np.float32)


def _micro_average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of every (text, label) decision ranked by score; 0 without a positive."""
    from sklearn.metrics import average_precision_score

    truth = np.asarray(targets).ravel() > 0.5
    if not truth.any():
        return 0.0
    return round(float(average_precision_score(truth, np.asarray(scores).ravel())), 4)
