"""Which data a run trains on (:class:`DataSpec`), and the split a bundle or checkpoint was trained on,
rebuilt from the source it records (:func:`recorded_splits`): the one way every later command
(export, evaluate, quantize, drift, the seed report) gets back a model's own split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from service.bundle import Bundle, DataSource
from training.data import multilabel
from training.data.builtin import load_builtin
from training.data.labels import CASE_CHOICES, tidy_labels
from training.data.reading import DataError, read_file, read_labelled
from training.data.splits import Splits, make_given_splits, make_splits


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
        separator = self.label_separator or multilabel.DEFAULT_SEPARATOR
        if self.dataset is not None:
            if self.task == "multi-label":
                raise DataError(f"the built-in data set {self.dataset} is single-label")
            splits = make_splits(load_builtin(self.dataset), tuple(self.split), self.seed)
        elif self.data is not None:
            rows, task = read_labelled(
                Path(self.data),
                self.text_column,
                self.label_column,
                self.format,
                self.task,
                separator,
                **self._reading(),
            )
            rows = tidy_labels(rows, self._label_case(), Path(self.data).name)
            splits = make_splits(rows, tuple(self.split), self.seed, task)
        else:
            train, task = read_labelled(
                Path(self.train),
                self.text_column,
                self.label_column,
                self.format,
                self.task,
                separator,
                **self._reading(),
            )
            parts = [
                read_file(
                    Path(path),
                    self.text_column,
                    self.label_column,
                    self.format,
                    task,
                    separator,
                    **self._reading(),
                )
                if path
                else []
                for path in (self.dev, self.test)
            ]
            # one pass over every file, so a case variant is folded the same way in train, dev and test
            tidied = tidy_labels([*train, *parts[0], *parts[1]], self._label_case(), "the data files")
            train, parts = (
                tidied[: len(train)],
                [
                    tidied[len(train) : len(train) + len(parts[0])],
                    tidied[len(train) + len(parts[0]) :],
                ],
            )
            splits = make_given_splits(train, *parts, task=task)
        splits.report["source"] = self.to_dict()
        return splits

    def _label_case(self) -> str | None:
        """``--fold-label-case`` ("fold") or ``--keep-label-case`` ("keep"), recorded in ``extra``."""
        value = self.extra.get("label_case") if self.extra else None
        return value if value in CASE_CHOICES else None

    def _reading(self) -> dict[str, str | None]:
        return {"delimiter": self.delimiter, "encoding": self.encoding}


class Checkpointed(Protocol):
    """What a checkpoint records about its data (``training.loop.trainer.CheckpointModel``)."""

    @property
    def path(self) -> Path: ...

    @property
    def labels(self) -> list[str]: ...

    @property
    def data_source(self) -> DataSource | None: ...


def recorded_splits(bundle: Bundle | Checkpointed) -> Splits:
    """The split ``bundle`` (or a checkpoint) was trained on, rebuilt from the data source it records: the
    same files, deduplication, ratios and seed. Refused, saying how to go on, when no source is recorded,
    the data cannot be read any more (a moved file), or the rebuilt split is not the recorded one (other
    counts or labels: the data changed since)."""
    if isinstance(bundle, Bundle):
        source, counts = bundle.manifest.data_source, bundle.manifest.training.split_counts
    else:
        source, counts = bundle.data_source, None
    if source is None:
        raise DataError(
            f"{bundle.path} records no data source; pass --data FILE, --dataset or --train/--dev/--test"
        )
    try:
        splits = DataSpec.of(source).load()
    except DataError as error:
        raise DataError(
            f"{error} (the data {bundle.path} was trained on, as recorded); if the file moved, pass it "
            "again: --data FILE (or --train/--dev/--test), with the same --text-column/--label-column"
        ) from error
    if counts and splits.counts() != dict(counts):
        raise DataError(
            f"{bundle.path}: the rebuilt split {splits.counts()} is not the recorded one {dict(counts)}: "
            f"{source.describe()} changed since; pass the data it was trained on"
        )
    if list(splits.labels) != list(bundle.labels):
        raise DataError(
            f"{bundle.path}: the rebuilt split's labels {splits.labels} differ from the recorded ones "
            f"{list(bundle.labels)}; pass the data it was trained on"
        )
    return splits
