"""``POST /v2/models/{name}[/versions/{version}]/infer``: one request, decoded, checked, run and encoded.

The body is decoded here and the outputs come from one verb of the engine
(:meth:`service.engine.engine.Engine.outputs`): texts (``TEXT``) are tokenized exactly as ``/classify``
tokenizes them, and ``LOGITS``, ``PROBS`` and ``LABEL`` come from the same micro-batcher as ``/classify``'s
scores, so the same text gets the same numbers, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from service.api.errors import describe_validation_errors
from service.api.oip import codec
from service.api.oip.schemas import InferRequest, RequestInput
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
class Wanted:
    """One output to answer: as binary or JSON, and as the k best classes or as the tensor itself."""

    name: str
    binary: bool
    classes: int | None = None


async def answer(
    body: bytes, headers: Mapping[str, str], name: str, version: int | None, engine: Engine
) -> Any:
    """The answer body and the length of its JSON part when binary outputs follow (None: JSON only).

    ``headers``: the request's (``Inference-Header-Content-Length``, ``Content-Encoding``)."""
    settings = engine.settings
    runtime = await engine.model(name, version)
    body = codec.decompress(body, headers.get("content-encoding"), settings.max_body_bytes)
    raw, binary = codec.split_body(body, headers.get(codec.HEADER_LENGTH))
    try:
        request = InferRequest.model_validate(raw)
    except ValidationError as error:
        errors: list[dict[str, Any]] = [dict(detail) for detail in error.errors(include_url=False)]
        raise InvalidRequest(describe_validation_errors(errors)) from None
    tensors = decode_inputs(request, binary, runtime, settings)
    wanted = wanted_outputs(request, runtime)
    asked = frozenset(_ENGINE_OUTPUTS[output.name] for output in wanted)
    if TEXT in tensors:
        texts = _texts(tensors[TEXT])
        truncate = request.parameters is None or request.parameters.truncate is not False
        query = Texts(texts, [f"{TEXT}.{index}" for index in range(len(texts))], truncate=truncate)
        outputs = await engine.outputs(runtime, asked, texts=query)
    else:
        outputs = await engine.outputs(
            runtime, asked, ids=_given_ids(tensors[INPUT_IDS], tensors[LENGTHS], runtime)
        )
    try:  # hidden states are built within the vector budget; the reservation lasts until the bytes exist
        return _encode(request, runtime, wanted, _by_name(outputs))
    finally:
        outputs.release()


def _encode(
    request: InferRequest, runtime: ModelRuntime, wanted: list[Wanted], results: dict[str, np.ndarray]
) -> tuple[bytes, int | None]:
    header: dict[str, Any] = {"model_name": runtime.name, "model_version": str(runtime.version)}
    if request.id is not None:
        header["id"] = request.id
    entries, chunks = [], []
    for output in wanted:
        entry, chunk = encode_output(output, results, runtime.labels)
        entries.append(entry)
        if chunk is not None:
            chunks.append(chunk)
    header["outputs"] = entries
    return codec.encode_answer(header, chunks)


def decode_inputs(
    request: InferRequest, binary: memoryview, runtime: ModelRuntime, settings: Settings
) -> dict[str, Any]:
    """The request's tensors by name: ``TEXT``, or ``INPUT_IDS`` with ``LENGTHS`` (shapes checked)."""
    names = [tensor.name for tensor in request.inputs]
    for tensor in request.inputs:
        if tensor.name not in INPUT_TYPES:
            raise InvalidRequest(f"unknown input {tensor.name[:80]!r} (inputs: {', '.join(INPUT_TYPES)})")
        if tensor.datatype != INPUT_TYPES[tensor.name]:
            raise InvalidRequest(
                f"input {tensor.name}: datatype {tensor.datatype[:20]!r}, expected {INPUT_TYPES[tensor.name]}"
            )
    if sorted(names) not in ([TEXT], [INPUT_IDS, LENGTHS]):
        raise InvalidRequest(f"send either {TEXT}, or {INPUT_IDS} with {LENGTHS} (got {', '.join(names)})")
    sizes = [tensor.parameters.binary_data_size if tensor.parameters else None for tensor in request.inputs]
    chunks = codec.split_binary(sizes, binary)
    max_texts, max_length = settings.max_texts, runtime.tokenizer.max_length
    decoded: dict[str, Any] = {}
    for tensor, chunk in zip(request.inputs, chunks, strict=True):
        shape = tensor.shape
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
        decoded[tensor.name] = (shape, _decode(tensor, chunk, count))
    if LENGTHS in decoded and decoded[LENGTHS][0][0] != decoded[INPUT_IDS][0][0]:
        raise InvalidRequest(
            f"{LENGTHS} has {decoded[LENGTHS][0][0]} rows, {INPUT_IDS} has {decoded[INPUT_IDS][0][0]}"
        )
    return {
        name: (data if name != INPUT_IDS else np.asarray(data).reshape(shape))
        for name, (shape, data) in decoded.items()
    }


def _check_rows(name: str, rows: int, max_texts: int) -> None:
    if not 1 <= rows <= max_texts:
        raise InvalidRequest(f"input {name}: {rows} rows (1 to {max_texts} per request)")


def _decode(tensor: RequestInput, chunk: memoryview | None, count: int) -> codec.Tensor:
    if chunk is not None:
        if tensor.data is not None:
            raise InvalidRequest(f"input {tensor.name}: send data or binary_data_size, not both")
        return codec.decode_binary(tensor.name, tensor.datatype, count, chunk)
    if tensor.data is None:
        raise InvalidRequest(f"input {tensor.name}: no data and no binary_data_size")
    return codec.decode_json(tensor.name, tensor.datatype, count, tensor.data, len(tensor.shape))


def wanted_outputs(request: InferRequest, runtime: ModelRuntime) -> list[Wanted]:
    """The outputs named in the request (all of them when none is named), in the request's order."""
    binary_default = bool(request.parameters and request.parameters.binary_data_output)
    names = output_names(runtime)
    if not request.outputs:
        return [Wanted(name, binary_default) for name in names]
    wanted, seen = [], set()
    for output in request.outputs:
        if output.name not in names:
            raise InvalidRequest(f"unknown output {output.name[:80]!r} (outputs: {', '.join(names)})")
        if output.name in seen:
            raise InvalidRequest(f"output {output.name} is asked for twice")
        seen.add(output.name)
        parameters = output.parameters
        binary = (
            binary_default if parameters is None or parameters.binary_data is None else parameters.binary_data
        )
        classes = parameters.classification if parameters is not None else None
        if classes is not None:
            labels = len(runtime.labels)
            if output.name not in CLASS_SCORES:
                raise InvalidRequest(f"output {output.name}: classification applies to {PROBS} or {LOGITS}")
            if not 1 <= classes <= labels:
                raise InvalidRequest(f"output {output.name}: classification {classes} (1 to {labels} labels)")
        wanted.append(Wanted(output.name, binary, classes))
    return wanted


def _texts(items: list[bytes]) -> list[str]:
    texts = []
    for index, item in enumerate(items):
        try:
            texts.append(item.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidRequest(f"{TEXT}.{index}: not valid UTF-8") from None
    return texts


def _given_ids(ids: np.ndarray, lengths: np.ndarray, runtime: ModelRuntime) -> list[list[int]]:
    vocab_size = runtime.tokenizer.vocab_size
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise InvalidRequest(f"input {INPUT_IDS}: ids must lie in [0, {vocab_size}) (the model's vocabulary)")
    width = ids.shape[1]
    lengths = np.asarray(lengths)
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


def _padded(decided: list[list[int]], width: int) -> np.ndarray:
    """Per text, the decided label indices best first, then -1 up to ``width``."""
    rows = np.full((len(decided), width), -1, dtype=np.int64)
    for row, indices in enumerate(decided):
        rows[row, : len(indices)] = indices
    return rows


def _by_name(outputs: ModelOutputs) -> dict[str, np.ndarray]:
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


def _classifications(scores: np.ndarray, k: int, labels: list[str]) -> list[bytes]:
    """``"<score>:<index>:<label>"`` for the k best classes of each row, best first (row-major)."""
    items = []
    for row in scores:
        for index in np.argsort(-row, kind="stable")[:k].tolist():
            items.append(f"{str(np.float32(row[index]))}:{index}:{labels[index]}".encode())
    return items


def encode_output(
    output: Wanted, results: dict[str, np.ndarray], labels: list[str]
) -> tuple[dict[str, Any], bytes | None]:
    """The output's ``$response_output`` and, for a binary output, its bytes."""
    values = results[output.name]
    items: list[bytes] | None = None
    if output.classes is not None:
        items = _classifications(values, output.classes, labels)
        shape = [len(values), output.classes]
    elif output.name in (LABEL, LABELS):  # -1: no label (answered as an empty string)
        items = [labels[index].encode() if index >= 0 else b"" for index in values.ravel().tolist()]
        shape = list(values.shape)
    else:
        array = np.ascontiguousarray(values, dtype="<f4")
        shape = list(array.shape)
    entry: dict[str, Any] = {"name": output.name, "datatype": "BYTES" if items is not None else "FP32"}
    entry["shape"] = shape
    if output.binary:
        chunk = codec.serialize_bytes(items) if items is not None else array.tobytes()
        entry["parameters"] = {"binary_data_size": len(chunk)}
        return entry, chunk
    entry["data"] = [item.decode() for item in items] if items is not None else array.ravel()
    return entry, None
