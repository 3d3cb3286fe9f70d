"""``POST /v2/models/{name}[/versions/{version}]/infer``: one request, decoded, checked, run and encoded.

Texts (``TEXT``) are tokenized exactly as ``/classify`` tokenizes them, and ``LOGITS``, ``PROBS`` and
``LABEL`` come from one call through the same micro-batcher, the scores made from the logits as
``/classify`` makes them: the same text gets the same numbers, bit for bit. The hidden states run in the
inference pool, one model call when asked for.
"""

from __future__ import annotations

import time
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
    LENGTHS,
    LOGITS,
    PROBS,
    TEXT,
    output_names,
)
from service.api.vector_budget import hidden_states_cost, vector_budget
from service.engine.inference import Inference
from service.engine.preprocess import check_texts
from service.engine.registry import Registry
from service.engine.runtime import ModelRuntime
from service.errors import InvalidRequest, ServiceError
from service.observability import metrics
from service.observability.context import note_model
from service.settings import Settings

_HIDDEN = frozenset({HIDDEN_STATES, H_N, C_N})


@dataclass(frozen=True)
class Wanted:
    """One output to answer: as binary or JSON, and as the k best classes or as the tensor itself."""

    name: str
    binary: bool
    classes: int | None = None


async def answer(
    body: bytes,
    headers: Mapping[str, str],
    name: str,
    version: int | None,
    registry: Registry,
    inference: Inference,
    settings: Settings,
) -> tuple[bytes, int | None]:
    """The answer body and the length of its JSON part when binary outputs follow (None: JSON only).

    ``headers``: the request's (``Inference-Header-Content-Length``, ``Content-Encoding``)."""
    runtime = registry.get(name, version)
    note_model(runtime.name, runtime.version)
    started = time.perf_counter()
    try:
        body = codec.decompress(body, headers.get("content-encoding"), settings.max_body_bytes)
        header_length = headers.get(codec.HEADER_LENGTH)
        result = await _answer(body, header_length, runtime, inference, settings)
    except ServiceError:
        metrics.observe_inference(runtime.name, runtime.version, False, time.perf_counter() - started)
        raise
    metrics.observe_inference(runtime.name, runtime.version, True, time.perf_counter() - started)
    return result


async def _answer(
    body: bytes, header_length: str | None, runtime: ModelRuntime, inference: Inference, settings: Settings
) -> tuple[bytes, int | None]:
    raw, binary = codec.split_body(body, header_length)
    try:
        request = InferRequest.model_validate(raw)
    except ValidationError as error:
        errors: list[dict[str, Any]] = [dict(detail) for detail in error.errors(include_url=False)]
        raise InvalidRequest(describe_validation_errors(errors)) from None
    tensors = decode_inputs(request, binary, runtime, settings)
    wanted = wanted_outputs(request, runtime)
    if TEXT in tensors:
        truncate = request.parameters is None or request.parameters.truncate is not False
        id_lists = await _text_ids(tensors[TEXT], runtime, inference, settings, truncate)
    else:
        id_lists = _given_ids(tensors[INPUT_IDS], tensors[LENGTHS], runtime)
    names = {output.name for output in wanted}
    # Hidden states are built within the worker's vector budget, as /hidden-states builds them (429 with
    # Retry-After past it, 413 if never); the reservation lasts until the answer's bytes exist.
    cost = hidden_states_cost(runtime, [len(ids) for ids in id_lists]) if names & _HIDDEN else 0
    release = vector_budget(settings.max_vector_bytes).reserve(cost) if cost else (lambda: None)
    try:
        results = await run_model(runtime, inference, id_lists, names)
        return _encode(request, runtime, wanted, results)
    finally:
        release()


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


async def _text_ids(
    items: list[bytes], runtime: ModelRuntime, inference: Inference, settings: Settings, truncate: bool
) -> list[list[int]]:
    locations = [f"{TEXT}.{index}" for index in range(len(items))]
    texts = []
    for location, item in zip(locations, items, strict=True):
        try:
            texts.append(item.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidRequest(f"{location}: not valid UTF-8") from None
    check_texts(texts, locations, settings.max_texts, settings.max_text_chars)
    encodings = await inference.encode(runtime, texts, locations, truncate, require_tokens=True, spans=False)
    return [encoding.ids for encoding in encodings]


def _given_ids(ids: np.ndarray, lengths: np.ndarray, runtime: ModelRuntime) -> list[list[int]]:
    vocab_size = runtime.tokenizer.vocab_size
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise InvalidRequest(f"input {INPUT_IDS}: ids must lie in [0, {vocab_size}) (the model's vocabulary)")
    width = ids.shape[1]
    lengths = np.asarray(lengths)
    if int(lengths.min()) < 1 or int(lengths.max()) > width:
        raise InvalidRequest(f"input {LENGTHS}: every length must lie in [1, {width}] (the row width)")
    return [row[:length].tolist() for row, length in zip(ids, lengths.tolist(), strict=True)]


async def run_model(
    runtime: ModelRuntime, inference: Inference, id_lists: list[list[int]], names: set[str]
) -> dict[str, np.ndarray]:
    """The named outputs for these id lists, batch first."""
    results: dict[str, np.ndarray] = {}
    if names & {PROBS, LABEL, LOGITS}:
        # One call through the model's micro-batcher, and the scores made from its logits, as /classify.
        results[LOGITS] = await inference.logits(runtime, id_lists)
        results[PROBS] = runtime.scores(results[LOGITS])
    if names & _HIDDEN:
        started = time.perf_counter()
        states = await inference.hidden_states(runtime, id_lists)
        metrics.observe_execution(
            runtime.name, runtime.version, len(id_lists), (), time.perf_counter() - started
        )
        longest = max(len(ids) for ids in id_lists)
        features = states.per_text[0].shape[1]
        padded = np.zeros((len(id_lists), longest, features), dtype=np.float32)  # ORT's padding is 0 too
        for row, text_states in enumerate(states.per_text):
            padded[row, : len(text_states)] = text_states
        results[HIDDEN_STATES] = padded
        results[H_N] = np.ascontiguousarray(states.h_n.transpose(1, 0, 2))  # (L*D, N, H) -> (N, L*D, H)
        if states.c_n is not None:  # LSTM cells only
            results[C_N] = np.ascontiguousarray(states.c_n.transpose(1, 0, 2))
    if LABEL in names:
        results[LABEL] = best_labels(runtime, results[PROBS])
    return results


def best_labels(runtime: ModelRuntime, scores: np.ndarray) -> np.ndarray:
    """Per text, the index of /classify's ``label``: the best score (the first on ties); for a multi-label
    model the best of the labels over their thresholds, -1 when none is (answered as an empty string)."""
    if runtime.task != "multi-label":
        return np.argmax(scores, axis=1)
    return np.array([decided[0] if decided else -1 for decided in runtime.decide(scores)], dtype=np.int64)


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
    elif output.name == LABEL:
        items = [labels[index].encode() if index >= 0 else b"" for index in values.tolist()]
        shape = [len(values)]
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
