"""Checks a freshly opened model must pass before it is served: the manifest's golden examples.

Each golden example holds a text, the ids training's tokenizer gave it and the logits torch computed.
Serving must reproduce both: the same ids (else the tokenizer drifted) and logits within
:data:`LOGIT_TOLERANCE` (else the graph is not the model that was evaluated). The examples run once as a
padded batch of mixed lengths and once one by one, which also proves padding changes nothing (except for
bundles that declare ``batch_invariant: false``: int8 models, whose goldens hold only text by text). The
label names must be the ones the golden logits were recorded with (``golden_labels``), so a labels.json
with two names swapped fails even with its checksum recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.bundle import PARITY_TOLERANCE, BundleError, GoldenExample
from service.engine.runtime import ModelRuntime

LOGIT_TOLERANCE = PARITY_TOLERANCE


def _golden_examples(runtime: ModelRuntime) -> Sequence[GoldenExample]:
    golden = runtime.manifest.golden  # each one's shape is checked when the manifest is read
    if not golden:
        raise BundleError("manifest has no golden examples, so the model cannot be verified")
    return golden


def _check_ids(runtime: ModelRuntime, golden: Sequence[GoldenExample]) -> list[list[int]]:
    id_lists = []
    for index, example in enumerate(golden):
        ids = runtime.tokenizer.encode(example.text).ids
        if tuple(ids) != example.ids:
            raise BundleError(
                f"golden example {index}: the tokenizer gives other ids than at training time "
                "(tokenizer.json or the tokenizer code changed)"
            )
        if not ids:
            raise BundleError(f"golden example {index} has no tokens")
        id_lists.append(ids)
    return id_lists


def _expected_logits(runtime: ModelRuntime, golden: Sequence[GoldenExample]) -> np.ndarray:
    try:
        expected = np.asarray([example.logits for example in golden], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise BundleError("golden logits must be lists of numbers of one length") from error
    if expected.ndim != 2 or expected.shape[1] != len(runtime.labels):
        raise BundleError(
            f"golden logits have shape {list(expected.shape)}; expected one value per label "
            f"({len(runtime.labels)} labels)"
        )
    return expected


def _check_logits(name: str, actual: np.ndarray, expected: np.ndarray) -> None:
    if actual.shape != expected.shape:
        raise BundleError(
            f"{name}: the graph gives logits of shape {list(actual.shape)}, expected "
            f"{list(expected.shape)} (one per label)"
        )
    difference = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    if not difference <= LOGIT_TOLERANCE:  # also catches NaN
        raise BundleError(
            f"{name}: onnxruntime logits differ from the torch logits in the manifest by {difference:.2e} "
            f"(limit {LOGIT_TOLERANCE:.0e}); the graph is not the model that was evaluated"
        )


def _check_label_names(runtime: ModelRuntime) -> None:
    recorded = runtime.manifest.golden_labels  # None in bundles written before it was recorded
    if recorded is not None and tuple(runtime.labels) != recorded:
        raise BundleError(
            "labels.json does not name the labels as the golden examples recorded them (golden_labels "
            f"{list(recorded)[:20]}): the label names were changed after training"
        )


def verify_golden(runtime: ModelRuntime) -> None:
    """Raise :class:`BundleError` with the reason unless every golden example reproduces (and the label
    names are the ones its logits were recorded with)."""
    _check_label_names(runtime)
    golden = _golden_examples(runtime)
    id_lists = _check_ids(runtime, golden)
    expected = _expected_logits(runtime, golden)
    # An int8 bundle (dynamic quantization scales activations per batch) says batch_invariant: false;
    # its golden logits are each text alone, so only that comparison holds for it.
    if runtime.batch_invariant:
        _check_logits("golden batch", runtime.logits(id_lists), expected)
    for index, ids in enumerate(id_lists):
        _check_logits(f"golden example {index} alone", runtime.logits([ids]), expected[index : index + 1])
