"""Multi-label data: a label cell → its label set, the 0/1 label matrix, the stratified split and the
spread of each label over the parts.

A multi-label text carries a set of labels (possibly empty: all-negative). How such a model is trained
and scored (thresholds, metrics, the baseline) is :mod:`training.loop`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

# iterative-stratification (the train extra) is imported where it is used, so that `lstm-train --help`
# and its argument errors work, and say what is missing, on a serving-only install.

TASKS = ("single-label", "multi-label")
DEFAULT_SEPARATOR = "|"


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
