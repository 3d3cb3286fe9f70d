"""The manifest: what a bundle records about its model, as frozen typed records (stdlib only).

``manifest.json`` holds one JSON object; :class:`Manifest` is its only reader and writer
(:meth:`Manifest.from_dict` / :meth:`Manifest.to_dict`). Every record keeps the keys it does not know in
``extra`` and writes them back unchanged, so a reader of an older schema passes a newer manifest's fields
through, and a newer reader still loads an older manifest (fields it lacks take their defaults).

Adding a field (for example per-label decision thresholds, a calibration temperature, the training
split's drift quantiles): give the record an optional field that defaults to ``None`` and list it in
``_OMIT_WHEN_NONE``; manifests that lack it still load, and bundles written without it do not change.
Until a field is declared it rides in ``extra``. Changing the meaning of an existing field needs a new
:data:`SCHEMA_VERSION`.

Sections the service only shows (``model``, ``parameters``, ``libraries``, the per-class figures, the
training history) stay plain JSON mappings: the records type what code reads. Treat them as read-only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)
# single-label: one softmax over the labels, the best one wins; multi-label: one sigmoid per label, each
# label is on when its score reaches its threshold (Manifest.thresholds)
TASKS = ("single-label", "multi-label")
MANIFEST_FILE = "manifest.json"

JSON = Any  # a value json.loads can return


class BundleError(Exception):
    """A bundle that cannot be written or must not be served; the message says why."""


def _to_json(value: Any) -> JSON:
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _to_json(item) for key, item in value.items()}
    return value


class _Record:
    """``from_dict`` / ``to_dict`` for a frozen keyword-only dataclass with an ``extra`` field."""

    _OMIT_WHEN_NONE: ClassVar[frozenset[str]] = frozenset()
    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    extra: Mapping[str, JSON]

    @classmethod
    def _known(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls) if field.name != "extra"]  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise BundleError(f"{MANIFEST_FILE}: {cls.__name__} must be a JSON object, got {data!r:.60}")
        known = cls._known()
        values = {}
        for name in known:
            if data.get(name) is not None:
                parse = cls._PARSE.get(name)
                values[name] = parse(data[name]) if parse else data[name]
        build: Callable[..., Any] = cls  # a frozen keyword-only dataclass: its fields are keywords
        try:
            return build(**values, extra={key: data[key] for key in data if key not in known})
        except TypeError as error:
            missing = [
                field.name
                for field in dataclasses.fields(cls)  # type: ignore[arg-type]
                if field.name not in values
                and field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ]
            raise BundleError(f"{MANIFEST_FILE}: {cls.__name__} lacks {', '.join(missing)}") from error

    def to_dict(self) -> dict[str, JSON]:
        written: dict[str, JSON] = {}
        for name in self._known():
            value = getattr(self, name)
            if value is None and name in self._OMIT_WHEN_NONE:
                continue
            written[name] = _to_json(value)
        written.update((key, value) for key, value in self.extra.items() if key not in written)
        return written


def _floats(value: Any) -> tuple[float, ...]:
    return tuple(float(item) for item in value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GoldenExample(_Record):
    """A held-out text, the ids training's tokenizer gave it, and the logits of the graph's source run
    on it alone (torch for an fp32 bundle): the service reproduces both before it serves the bundle."""

    text: str
    ids: tuple[int, ...]
    logits: tuple[float, ...]
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"ids": tuple, "logits": tuple}


def _golden(value: Any) -> tuple[GoldenExample, ...]:
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
class Parity(_Record):
    """How far the exported graph's logits are from its source's on held-out texts (``against``: what it was
    compared with, ``None`` meaning the torch model it was exported from, in mixed-length padded batches)."""

    max_abs_logit_diff: float
    argmax_agreement: float | None = None
    texts: int | None = None
    tolerance: float | None = None
    against: str | None = None
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    _OMIT_WHEN_NONE = frozenset({"argmax_agreement", "texts", "tolerance", "against"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Metrics(_Record):
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

    _OMIT_WHEN_NONE = frozenset(
        {"per_class", "confusion_matrix", "split", "dev_accuracy", "dev_macro_f1", "baseline"}
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSource(_Record):
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
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    _OMIT_WHEN_NONE = frozenset(
        {"dataset", "data", "train", "dev", "test", "format", "task", "label_separator"}
    )
    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"split": _floats}

    def describe(self) -> str:
        """The source in a few words: the data set's name or the file."""
        return str(self.dataset or self.data or self.test or self.train)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataReport(_Record):
    """The split as training saw it: its ``source``, the texts per part, and (in ``extra``) the
    deduplication figures."""

    source: DataSource | None = None
    counts: Mapping[str, int] | None = None
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    _OMIT_WHEN_NONE = frozenset({"source", "counts"})
    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"source": DataSource.from_dict}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingRecord(_Record):
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

    _OMIT_WHEN_NONE = frozenset(
        {
            "seed",
            "settings",
            "tokenizer_settings",
            "data",
            "epochs_run",
            "best_epoch",
            "best_dev_accuracy",
            "stopped_early",
            "train_seconds",
            "checkpoint",
            "split_counts",
            "labels",
        }
    )
    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "data": DataReport.from_dict,
        "history": tuple,
        "labels": tuple,
    }

    @property
    def data_source(self) -> DataSource | None:
        return self.data.source if self.data is not None else None


def _thresholds(value: Any) -> Mapping[str, float]:
    if not isinstance(value, Mapping) or not all(
        isinstance(number, int | float) and not isinstance(number, bool) and 0 < number < 1
        for number in value.values()
    ):
        raise BundleError(f"{MANIFEST_FILE}: thresholds must map each label to a number strictly in (0, 1)")
    return {str(label): float(number) for label, number in value.items()}


def _calibration(value: Any) -> Mapping[str, JSON]:
    temperature = value.get("temperature") if isinstance(value, Mapping) else None
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not temperature > 0:
        raise BundleError(f"{MANIFEST_FILE}: calibration.temperature must be a number > 0")
    return dict(value)


def _task(value: Any) -> str:
    if value not in TASKS:
        raise BundleError(f"task {value!r} is not supported (supported: {', '.join(TASKS)})")
    return str(value)


def _schema_version(value: Any) -> int:
    if value not in SUPPORTED_SCHEMA_VERSIONS:
        raise BundleError(
            f"manifest schema_version {value!r} is not supported "
            f"(this service reads {SUPPORTED_SCHEMA_VERSIONS})"
        )
    return int(value)


def _checksums(value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(digest, str) for digest in value.values()):
        raise BundleError(f"{MANIFEST_FILE}: files must map each file name to its sha256")
    return dict(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Distribution(_Record):
    """Quantiles of one per-text figure over a split (``p90``: 90 % of the texts are at or below it)."""

    p10: float
    p50: float
    p90: float
    p99: float
    mean: float
    max: float
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class InputDrift(_Record):
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class Manifest(_Record):
    """Everything ``manifest.json`` says. ``name``, ``version``, ``files`` (sha256 per payload file),
    ``created_at`` and ``schema_version`` are set by ``write_bundle``; training fills in the rest.

    ``model`` is the architecture (``training.model.ModelConfig`` as a dict: vocab_size, num_labels,
    embedding_dim, ...). ``batch_invariant`` is False for graphs whose logits depend on the texts batched
    with them (int8: activations are quantized with one scale per batch); their golden logits hold for
    each text alone. ``variant`` is ``fp32`` or ``int8`` (then ``quantized_from`` says from which)."""

    model: Mapping[str, JSON]
    golden: tuple[GoldenExample, ...]
    name: str = ""
    version: int = 0
    task: str = "single-label"
    variant: str = "fp32"
    parameters: Mapping[str, JSON] | None = None
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    training: TrainingRecord = dataclasses.field(default_factory=TrainingRecord)
    libraries: Mapping[str, str] = dataclasses.field(default_factory=dict)
    golden_source: str | None = None
    parity: Parity | None = None
    batch_invariant: bool = True
    batch_invariance: Mapping[str, JSON] | None = None
    quantized_from: Mapping[str, JSON] | None = None
    drift: InputDrift | None = None  # None for bundles written before it was recorded
    # multi-label only: each label's decision threshold, strictly between 0 and 1 (tuned on dev)
    thresholds: Mapping[str, float] | None = None
    # single-label, optional: {"temperature": T, ...}; served probabilities are softmax(logits / T)
    calibration: Mapping[str, JSON] | None = None
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    created_at: str | None = None
    schema_version: int = SCHEMA_VERSION
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    _OMIT_WHEN_NONE = frozenset(
        {
            "parameters",
            "golden_source",
            "parity",
            "batch_invariance",
            "quantized_from",
            "drift",
            "thresholds",
            "calibration",
            "created_at",
        }
    )
    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "golden": _golden,
        "version": int,
        "task": _task,
        "metrics": Metrics.from_dict,
        "training": TrainingRecord.from_dict,
        "parity": Parity.from_dict,
        "drift": InputDrift.from_dict,
        "thresholds": _thresholds,
        "calibration": _calibration,
        "batch_invariant": bool,
        "files": _checksums,
        "schema_version": _schema_version,
    }
    _REQUIRED: ClassVar[Sequence[str]] = (
        "schema_version",
        "name",
        "version",
        "task",
        "files",
        "model",
        "golden",
    )

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Read a parsed ``manifest.json``; raise :class:`BundleError` saying what is wrong with it."""
        if not isinstance(data, Mapping):
            raise BundleError(f"{MANIFEST_FILE} must hold a JSON object")
        missing = [key for key in cls._REQUIRED if key not in data]
        if missing:
            raise BundleError(f"{MANIFEST_FILE} lacks {', '.join(missing)}")
        if not isinstance(data["model"], Mapping):
            raise BundleError(f"{MANIFEST_FILE}: model must be a JSON object")
        try:
            manifest: Manifest = super().from_dict(data)
        except (TypeError, ValueError) as error:
            raise BundleError(f"{MANIFEST_FILE}: {error}") from error
        return manifest

    @property
    def data_source(self) -> DataSource | None:
        """Where the training data came from, if recorded (rebuilds the same split)."""
        return self.training.data_source
