"""What every Open Inference Protocol adapter shares, whatever its wire (JSON over HTTP, protobuf over gRPC).

An adapter decodes its wire into :class:`Declared` inputs and their elements, and the outputs asked for;
this module checks them against the model's signature (:mod:`service.api.oip.signature`), runs the one
engine verb (:meth:`service.engine.engine.Engine.outputs`) and gives each output's datatype, shape and
values for the adapter to encode. So ``/v2/models/{name}/infer`` and the gRPC ``ModelInfer`` refuse the
same requests with the same messages and answer the same numbers, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from service.api.oip import codec
from service.api.oip.signature import (
    C_N,
    CLASS_SCORES,
    H_N,
    HIDDEN_STATES,
    INPUT_IDS,
    INPUT_TYPES,
    LABEL,
    LABELS,
    LENGTHS,
    LOGITS,
    PROBS,
    TEXT,
    output_names,
)
from service.engine import results
from service.engine.engine import Engine
from service.engine.results import ModelOutputs, Texts
from service.engine.runtime import ModelRuntime
from service.errors import InvalidRequest
from service.settings import Settings


@dataclass(frozen=True)
class Declared:
    """An input as the request declares it, before its elements are read."""

    name: str
    datatype: str
    shape: Sequence[int]


@dataclass(frozen=True)
class Wanted:
    """One output to answer: as binary or not, and as the k best classes or as the tensor itself."""

    name: str
    binary: bool
    classes: int | None = None


@dataclass(frozen=True)
class Answered:
    """One output's values: ``items`` (BYTES elements, row-major) or ``array`` (FP32)."""

    name: str
    datatype: str
    shape: list[int]
    items: list[bytes] | None
    array: np.ndarray | None

    def raw(self) -> bytes:
        """The binary tensor framing: little-endian FP32, or each BYTES element after its 4-byte length."""
        if self.items is not None:
            return codec.serialize_bytes(self.items)
        return b"" if self.array is None else self.array.tobytes()


def check_inputs(inputs: Sequence[Declared], runtime: ModelRuntime, settings: Settings) -> list[int]:
    """The element count of each input, once names, datatypes, the combination and the shapes are right:
    ``TEXT`` (BYTES ``[N]`` or ``[N, 1]``), or ``INPUT_IDS`` (INT64 ``[N, T]``) with ``LENGTHS``."""
    names = [tensor.name for tensor in inputs]
    for tensor in inputs:
        if tensor.name not in INPUT_TYPES:
            raise InvalidRequest(f"unknown input {tensor.name[:80]!r} (inputs: {', '.join(INPUT_TYPES)})")
        if tensor.datatype != INPUT_TYPES[tensor.name]:
            raise InvalidRequest(
                f"input {tensor.name}: datatype {tensor.datatype[:20]!r}, expected {INPUT_TYPES[tensor.name]}"
            )
    if sorted(names) not in ([TEXT], [INPUT_IDS, LENGTHS]):
        raise InvalidRequest(f"send either {TEXT}, or {INPUT_IDS} with {LENGTHS} (got {', '.join(names)})")
    max_texts, max_length = settings.max_texts, runtime.tokenizer.max_length
    counts = []
    for tensor in inputs:
        shape = list(tensor.shape)
        if tensor.name == INPUT_IDS:
            if len(shape) != 2:
                raise InvalidRequest(f"input {INPUT_IDS}: shape {shape}, expected [N, T]")
            count = codec.element_count(INPUT_IDS, shape, max_texts * max_length)
            _check_rows(INPUT_IDS, shape[0], max_texts)
            if not 1 <= shape[1] <= max_length:
                raise InvalidRequest(f"input {INPUT_IDS}: {shape[1]} ids per row (1 to {max_length})")
        else:
            if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
                raise InvalidRequest(f"input {tensor.name}: shape {shape}, expected [N] or [N, 1]")
            count = codec.element_count(tensor.name, shape, max_texts)
            _check_rows(tensor.name, shape[0], max_texts)
        counts.append(count)
    if len(inputs) == 2:
        rows = {tensor.name: tensor.shape[0] for tensor in inputs}
        if rows[LENGTHS] != rows[INPUT_IDS]:
            raise InvalidRequest(f"{LENGTHS} has {rows[LENGTHS]} rows, {INPUT_IDS} has {rows[INPUT_IDS]}")
    return counts


def _check_rows(name: str, rows: int, max_texts: int) -> None:
    if not 1 <= rows <= max_texts:
        raise InvalidRequest(f"input {name}: {rows} rows (1 to {max_texts} per request)")


def check_output(name: str, classes: int | None, runtime: ModelRuntime) -> None:
    """Refuse an output the model does not give, or a classification it cannot rank."""
    names = output_names(runtime)
    if name not in names:
        raise InvalidRequest(f"unknown output {name[:80]!r} (outputs: {', '.join(names)})")
    if classes is not None:
        labels = len(runtime.labels)
        if name not in CLASS_SCORES:
            raise InvalidRequest(f"output {name}: classification applies to {PROBS} or {LOGITS}")
        if not 1 <= classes <= labels:
            raise InvalidRequest(f"output {name}: classification {classes} (1 to {labels} labels)")


def check_outputs(asked: Sequence[Wanted], binary_default: bool, runtime: ModelRuntime) -> list[Wanted]:
    """The outputs asked for in the request's order, each once; every output when none is named."""
    if not asked:
        return [Wanted(name, binary_default) for name in output_names(runtime)]
    seen: set[str] = set()
    for output in asked:
        check_output(output.name, output.classes, runtime)
        if output.name in seen:
            raise InvalidRequest(f"output {output.name} is asked for twice")
        seen.add(output.name)
    return list(asked)


async def run(
    engine: Engine,
    runtime: ModelRuntime,
    tensors: dict[str, codec.Tensor],
    shapes: Mapping[str, Sequence[int]],
    wanted: Sequence[Wanted],
    truncate: bool,
) -> ModelOutputs:
    """The engine's outputs for the decoded inputs (the caller calls ``release()`` once it has encoded)."""
    asked = frozenset(_ENGINE_OUTPUTS[output.name] for output in wanted)
    if TEXT in tensors:
        texts = _texts(tensors[TEXT])
        query = Texts(texts, [f"{TEXT}.{index}" for index in range(len(texts))], truncate=truncate)
        return await engine.outputs(runtime, asked, texts=query)
    ids = np.asarray(tensors[INPUT_IDS]).reshape(list(shapes[INPUT_IDS]))
    return await engine.outputs(runtime, asked, ids=_given_ids(ids, np.asarray(tensors[LENGTHS]), runtime))


def _texts(items: codec.Tensor) -> list[str]:
    texts = []
    for index, item in enumerate(items):
        try:
            texts.append(bytes(item).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidRequest(f"{TEXT}.{index}: not valid UTF-8") from None
    return texts


def _given_ids(ids: np.ndarray, lengths: np.ndarray, runtime: ModelRuntime) -> list[list[int]]:
    vocab_size = runtime.tokenizer.vocab_size
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise InvalidRequest(f"input {INPUT_IDS}: ids must lie in [0, {vocab_size}) (the model's vocabulary)")
    width = ids.shape[1]
    if int(lengths.min()) < 1 or int(lengths.max()) > width:
        raise InvalidRequest(f"input {LENGTHS}: every length must lie in [1, {width}] (the row width)")
    return [row[:length].tolist() for row, length in zip(ids, lengths.tolist(), strict=True)]


# The engine's output each of the protocol's outputs is read from.
_ENGINE_OUTPUTS = {
    LOGITS: results.LOGITS,
    PROBS: results.SCORES,
    LABEL: results.LABELS,
    LABELS: results.DECIDED,
    HIDDEN_STATES: results.HIDDEN,
    H_N: results.HIDDEN,
    C_N: results.HIDDEN,
}


def by_name(outputs: ModelOutputs) -> dict[str, np.ndarray]:
    """The engine's outputs under the protocol's names (those it computed)."""
    named = {
        LOGITS: outputs.logits,
        PROBS: outputs.scores,
        LABEL: None if outputs.best_labels is None else np.asarray(outputs.best_labels, dtype=np.int64),
        LABELS: None if outputs.decided is None else _padded(outputs.decided, len(outputs.runtime.labels)),
        HIDDEN_STATES: outputs.hidden_states,
        H_N: outputs.h_n,
        C_N: outputs.c_n,
    }
    return {name: array for name, array in named.items() if array is not None}


def _padded(decided: list[list[int]], width: int) -> np.ndarray:
    """Per text, the decided label indices best first, then -1 up to ``width``."""
    rows = np.full((len(decided), width), -1, dtype=np.int64)
    for row, indices in enumerate(decided):
        rows[row, : len(indices)] = indices
    return rows


def _classifications(scores: np.ndarray, k: int, labels: list[str]) -> list[bytes]:
    """``"<score>:<index>:<label>"`` for the k best classes of each row, best first (row-major)."""
    items = []
    for row in scores:
        for index in np.argsort(-row, kind="stable")[:k].tolist():
            items.append(f"{str(np.float32(row[index]))}:{index}:{labels[index]}".encode())
    return items


def answered(output: Wanted, values_by_name: dict[str, np.ndarray], labels: list[str]) -> Answered:
    """One output's datatype, shape and values: BYTES for labels and classifications, FP32 otherwise."""
    values = values_by_name[output.name]
    if output.classes is not None:
        items = _classifications(values, output.classes, labels)
        return Answered(output.name, "BYTES", [len(values), output.classes], items, None)
    if output.name in (LABEL, LABELS):  # -1: no label (answered as an empty string)
        items = [labels[index].encode() if index >= 0 else b"" for index in values.ravel().tolist()]
        return Answered(output.name, "BYTES", list(values.shape), items, None)
    array = np.ascontiguousarray(values, dtype="<f4")
    return Answered(output.name, "FP32", list(array.shape), None, array)
