"""The floor a model must clear to be published: it must have learned something a trivial scorer cannot.

- single-label: the trivial scorer answers the training split's most frequent label for every text;
- multi-label: it answers the same label set for every text, the set (the labels at least as frequent as
  some cut-off in training) chosen by dev micro-F1, ``{}`` included.

The model's headline figure (test accuracy, or test micro-F1 for multi-label; dev where there is no test
split) must beat the trivial scorer's on the same texts; where the TF-IDF baseline ran and beat the trivial
scorer, the model must also reach :data:`MIN_SHARE_OF_BASELINE` of the baseline's gain over it. A model
below the floor is refused with the figures and the likely fixes; ``--allow-weak`` publishes it anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.data.splits import Splits

# Half of what a bag-of-words model gains over the trivial scorer: a smaller gain means the recurrent model
# has not learned the task yet (too few epochs, too small, or an early stop on a score that had not moved).
MIN_SHARE_OF_BASELINE = 0.5


class WeakModelError(ValueError):
    """A trained model below the floor; the message gives the figures and the fixes."""


@dataclass(frozen=True)
class Floor:
    metric: str  # "accuracy" or "micro-F1"
    part: str  # the split the figures are measured on
    model: float
    trivial: float
    trivial_answer: str  # what the trivial scorer answers, in words
    baseline: float | None
    required: float  # the lowest figure that passes

    @property
    def passed(self) -> bool:
        return self.model > self.trivial and self.model >= self.required

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "split": self.part,
            "model": self.model,
            "trivial": self.trivial,
            "trivial_answer": self.trivial_answer,
            "baseline": self.baseline,
            "required": self.required,
            "min_share_of_baseline_gain": MIN_SHARE_OF_BASELINE,
            "passed": self.passed,
        }


def measure_floor(splits: Splits, metrics: dict[str, Any]) -> Floor:
    """The floor of the model whose figures (``assess``'s metrics) are ``metrics``."""
    part = "test" if splits.test else "dev"
    baseline = metrics.get("baseline") or {}
    if splits.task == "multi-label":
        trivial, answer = _trivial_multilabel(splits, part)
        model = metrics.get("micro_f1") if part == "test" else metrics.get("dev_micro_f1")
        base = baseline.get("micro_f1") if part == "test" else baseline.get("dev_micro_f1")
        metric = "micro-F1"
    else:
        trivial, answer = _trivial_single(splits, part)
        model = metrics.get("accuracy") if part == "test" else metrics.get("dev_accuracy")
        base = baseline.get("accuracy") if part == "test" else baseline.get("dev_accuracy")
        metric = "accuracy"
    base = float(base) if isinstance(base, int | float) else None
    required = trivial
    if base is not None and base > trivial:
        required = trivial + MIN_SHARE_OF_BASELINE * (base - trivial)
    return Floor(metric, part, float(model or 0.0), round(trivial, 4), answer, base, round(required, 4))


def refusal(floor: Floor, task: str) -> str:
    """Why the model is refused and what to change, with the figures."""
    gap = (
        f"below {floor.required} (the trivial scorer's {floor.trivial} plus {MIN_SHARE_OF_BASELINE:.0%} of "
        f"the TF-IDF baseline's gain, baseline {floor.baseline})"
        if floor.required > floor.trivial
        else f"not above the trivial scorer's {floor.trivial}"
    )
    fixes = [
        "more epochs (--epochs, --patience)",
        "a bigger model (--embedding-dim, --hidden-dim)",
        "a higher --lr",
    ]
    if task == "multi-label":
        fixes.append("--pos-weight for rare labels")
    return (
        f"not published: the model learned too little: its {floor.part} {floor.metric} {floor.model} is "
        f"{gap}; a trivial scorer that {floor.trivial_answer} scores {floor.trivial}. Try "
        + ", ".join(fixes)
        + "; or pass --allow-weak to publish it anyway"
    )


def _trivial_single(splits: Splits, part: str) -> tuple[float, str]:
    counts = np.bincount(np.asarray(splits.targets("train"), dtype=np.int64), minlength=len(splits.labels))
    majority = int(counts.argmax())
    truth = np.asarray(splits.targets(part), dtype=np.int64)
    accuracy = float((truth == majority).mean()) if len(truth) else 0.0
    return accuracy, f"answers the most frequent label {splits.labels[majority]!r} for every text"


def _trivial_multilabel(splits: Splits, part: str) -> tuple[float, str]:
    """The best constant label set by dev micro-F1 among the sets "every label at least this frequent"."""
    train = np.asarray(splits.targets("train"), dtype=bool)
    dev = np.asarray(splits.targets("dev"), dtype=bool)
    frequency = train.mean(axis=0) if len(train) else np.zeros(len(splits.labels))
    best: tuple[float, np.ndarray] = (-1.0, np.zeros(len(splits.labels), dtype=bool))
    for cut in sorted(set(frequency.tolist()), reverse=True):
        chosen = frequency >= cut
        score = _micro_f1(dev, chosen)
        if score > best[0]:
            best = (score, chosen)
    chosen = best[1]
    truth = np.asarray(splits.targets(part), dtype=bool)
    names = [label for label, keep in zip(splits.labels, chosen, strict=True) if keep]
    return _micro_f1(truth, chosen), f"answers {names} for every text"


def _micro_f1(truth: np.ndarray, constant: Sequence[bool] | np.ndarray) -> float:
    if not len(truth):
        return 0.0
    guess = np.broadcast_to(np.asarray(constant, dtype=bool), truth.shape)
    true_positive = float((truth & guess).sum())
    denominator = float(truth.sum() + guess.sum())
    return 2 * true_positive / denominator if denominator else 0.0
