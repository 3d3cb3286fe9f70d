"""The manifest's sections as typed records: golden examples, parity, metrics, the data source and
training record, and the training split's input distribution (stdlib only)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from service.bundle.record import JSON, MANIFEST_FILE, BundleError, Record, floats


@dataclasses.dataclass(frozen=True, kw_only=True)
class GoldenExample(Record):
    """A held-out text, the ids training's tokenizer gave it, and the logits of the graph's source run
    on it alone (torch for an fp32 bundle): the service reproduces both before it serves the bundle."""

    text: str
    ids: tuple[int, ...]
    logits: tuple[float, ...]
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"ids": tuple, "logits": tuple}


def parse_golden(value: Any) -> tuple[GoldenExample, ...]:
    if not isinstance(value, list):
        raise BundleError(f"{MANIFEST_FILE}: golden must be a list of examples")
    examples = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or not {"text", "ids", "logits"} <= set(item):
            raise BundleError(f"golden example {index} must hold text, ids and logits")
        ids, logits = item["ids"], item["logits"]
        if (
            not isinstance(item["text"], str)
            or not isinstance(ids, list)
            or not all(isinstance(token, int) and not isinstance(token, bool) for token in ids)
            or not isinstance(logits, list)
            or not all(isinstance(number, int | float) and not isinstance(number, bool) for number in logits)
        ):
            raise BundleError(
                f"golden example {index}: text must be a string, ids a list of integers and logits "
                "a list of numbers"
            )
        examples.append(GoldenExample.from_dict(item))
    return tuple(examples)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Parity(Record):
    """How far the exported graph's logits are from its source's on held-out texts (``against``: what it was
    compared with, ``None`` meaning the torch model it was exported from, in mixed-length padded batches)."""

    max_abs_logit_diff: float
    argmax_agreement: float | None = None
    texts: int | None = None
    tolerance: float | None = None
    against: str | None = None
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Metrics(Record):
    """Figures on the held-out ``split`` (test; ``None`` where it was empty), dev beside them, and the
    TF-IDF + logistic-regression ``baseline`` on the same split."""

    accuracy: float | None = None
    macro_f1: float | None = None
    count: int | None = None
    per_class: Mapping[str, JSON] | None = None
    confusion_matrix: Mapping[str, JSON] | None = None
    split: str | None = None
    dev_accuracy: float | None = None
    dev_macro_f1: float | None = None
    baseline: Mapping[str, JSON] | None = None
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    # Written as null when unset, as the bundles written so far have them.
    _WRITE_NONE = frozenset({"accuracy", "macro_f1", "count"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSource(Record):
    """Where the labelled texts came from: a built-in ``dataset``, one ``data`` file split by ``split``
    shares with ``seed``, or given ``train``/``dev``/``test`` files. Enough to rebuild the same split."""

    dataset: str | None = None
    data: str | None = None
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    format: str | None = None
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 13
    task: str | None = None  # None: inferred from the label cells when read
    label_separator: str | None = None  # multi-label CSV/TSV cells; None: "|"
    delimiter: str | None = None  # CSV/TSV; None: found in the header, else the suffix's
    encoding: str | None = None  # None: UTF-8 (UTF-16 with a byte-order mark)
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"split": floats}

    def describe(self) -> str:
        """The source in a few words: the data set's name or the file."""
        return str(self.dataset or self.data or self.test or self.train)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataReport(Record):
    """The split as training saw it: its ``source``, the texts per part, and (in ``extra``) the
    deduplication figures."""

    source: DataSource | None = None
    counts: Mapping[str, int] | None = None
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"source": DataSource.from_dict}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingRecord(Record):
    """How the model was trained: the settings, the data, the epochs, and the ``command`` that ran."""

    seed: int | None = None
    settings: Mapping[str, JSON] | None = None
    tokenizer_settings: Mapping[str, JSON] | None = None
    pretrained: Mapping[str, JSON] | None = None  # None: the embedding started random
    data: DataReport | None = None
    epochs_run: int | None = None
    best_epoch: int | None = None
    best_dev_accuracy: float | None = None
    stopped_early: bool | None = None
    history: tuple[Mapping[str, JSON], ...] = ()
    train_seconds: float | None = None
    checkpoint: str | None = None  # set when the bundle was exported from a checkpoint file
    command: str | None = None
    split_counts: Mapping[str, int] | None = None
    labels: tuple[str, ...] | None = None
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    # Written as null when unset, as the bundles written so far have them.
    _WRITE_NONE = frozenset({"pretrained", "command"})
    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "data": DataReport.from_dict,
        "history": tuple,
        "labels": tuple,
    }

    @property
    def data_source(self) -> DataSource | None:
        return self.data.source if self.data is not None else None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Distribution(Record):
    """Quantiles of one per-text figure over a split (``p90``: 90 % of the texts are at or below it)."""

    p10: float
    p50: float
    p90: float
    p99: float
    mean: float
    max: float
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class InputDrift(Record):
    """What the training split's inputs looked like to the tokenizer, to compare served inputs with: the
    share of each text's tokens that are ``<unk>`` and its tokens before truncation (see
    :mod:`service.bundle.drift`)."""

    split: str = "train"
    texts: int
    unknown_token_ratio: Distribution
    tokens_per_text: Distribution
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "unknown_token_ratio": Distribution.from_dict,
        "tokens_per_text": Distribution.from_dict,
    }
