"""The manifest: what a bundle records about its model, as frozen typed records (stdlib only).

``manifest.json`` holds one JSON object; :class:`Manifest` is its only reader and writer
(:meth:`Manifest.from_dict` / :meth:`Manifest.to_dict`). Every record keeps the keys it does not know in
``extra`` and writes them back unchanged, so a reader of an older schema passes a newer manifest's fields
through, and a newer reader still loads an older manifest (fields it lacks take their defaults).

Adding a field (for example per-label decision thresholds, a calibration temperature, the training
split's drift quantiles): give the record an optional field that defaults to ``None``; manifests that
lack it still load, and bundles written without it do not change (a None field is not written).
Until a field is declared it rides in ``extra``. Changing the meaning of an existing field needs a new
:data:`SCHEMA_VERSION`.

The records' machinery is in :mod:`service.bundle.record`, the sections (golden examples, parity,
metrics, training record, input drift) in :mod:`service.bundle.sections`; this module holds the whole.

Sections the service only shows (``model``, ``parameters``, ``libraries``, the per-class figures, the
training history) stay plain JSON mappings: the records type what code reads. Treat them as read-only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from service.bundle.record import JSON, MANIFEST_FILE, BundleError, Record
from service.bundle.sections import (
    DataReport,
    DataSource,
    Distribution,
    GoldenExample,
    InputDrift,
    Metrics,
    Parity,
    TrainingRecord,
    parse_golden,
)

__all__ = [
    "MANIFEST_FILE",
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "MULTI_LABEL",
    "SINGLE_LABEL",
    "TASKS",
    "BundleError",
    "DataReport",
    "DataSource",
    "Distribution",
    "GoldenExample",
    "InputDrift",
    "Manifest",
    "Metrics",
    "Parity",
    "TrainingRecord",
]

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)
# single-label: one softmax over the labels, the best one wins; multi-label: one sigmoid per label, each
# label is on when its score reaches its threshold (Manifest.thresholds)
SINGLE_LABEL, MULTI_LABEL = "single-label", "multi-label"
TASKS = (SINGLE_LABEL, MULTI_LABEL)


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


def _label_names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(label, str) for label in value):
        raise BundleError(f"{MANIFEST_FILE}: golden_labels must be a list of label names")
    return tuple(value)


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
class Manifest(Record):
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
    task: str = SINGLE_LABEL
    variant: str = "fp32"
    parameters: Mapping[str, JSON] | None = None
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    training: TrainingRecord = dataclasses.field(default_factory=TrainingRecord)
    libraries: Mapping[str, str] = dataclasses.field(default_factory=dict)
    golden_source: str | None = None
    # The label names in the order of the golden logits (set by write_bundle): a labels.json whose names
    # were swapped or renamed fails verification, even with its checksum recomputed. None: not recorded.
    golden_labels: tuple[str, ...] | None = None
    parity: Parity | None = None
    batch_invariant: bool = True
    batch_invariance: Mapping[str, JSON] | None = None
    quantized_from: Mapping[str, JSON] | None = None
    drift: InputDrift | None = None  # None for bundles written before it was recorded
    # multi-label only: each label's decision threshold, strictly between 0 and 1 (tuned on dev)
    thresholds: Mapping[str, float] | None = None
    # single-label, optional: {"temperature": T, ...}; served probabilities are softmax(logits / T)
    calibration: Mapping[str, JSON] | None = None
    # False: written but not served unless asked for by version (lstm-train --no-promote, an int8 variant
    # without --promote); the service serves the highest version not marked False. None or True: served.
    promoted: bool | None = None
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    created_at: str | None = None
    schema_version: int = SCHEMA_VERSION
    extra: Mapping[str, JSON] = dataclasses.field(default_factory=dict)

    _PARSE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {
        "golden": parse_golden,
        "golden_labels": _label_names,
        "version": int,
        "task": _task,
        "metrics": Metrics.from_dict,
        "training": TrainingRecord.from_dict,
        "parity": Parity.from_dict,
        "drift": InputDrift.from_dict,
        "thresholds": _thresholds,
        "calibration": _calibration,
        "batch_invariant": bool,
        "promoted": bool,
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
