"""``POST /v2/models/{name}[/versions/{version}]/infer``: one request, decoded, checked, run and encoded.

The body is decoded here and the outputs come from one verb of the engine
(:meth:`service.engine.engine.Engine.outputs`): texts (``TEXT``) are tokenized exactly as ``/classify``
tokenizes them, and ``LOGITS``, ``PROBS`` and ``LABEL`` come from the same micro-batcher as ``/classify``'s
scores, so the same text gets the same numbers, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import ValidationError

from service.api.errors import describe_validation_errors
from service.api.oip import codec, tensors
from service.api.oip.schemas import InferRequest, RequestInput
from service.api.oip.tensors import Declared, Wanted
from service.engine.engine import Engine
from service.engine.runtime import ModelRuntime
from service.errors import InvalidRequest
from service.settings import Settings


async def answer(
    body: bytes, headers: Mapping[str, str], name: str, version: int | str | None, engine: Engine
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
    decoded = decode_inputs(request, binary, runtime, settings)
    wanted = wanted_outputs(request, runtime)
    truncate = request.parameters is None or request.parameters.truncate is not False
    shapes = {tensor.name: tensor.shape for tensor in request.inputs}
    outputs = await tensors.run(engine, runtime, decoded, shapes, wanted, truncate)
    try:  # hidden states are built within the vector budget; the reservation lasts until the bytes exist
        return _encode(request, runtime, wanted, tensors.by_name(outputs))
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
) -> dict[str, codec.Tensor]:
    """The request's tensors by name, flat: ``TEXT``, or ``INPUT_IDS`` with ``LENGTHS`` (shapes checked)."""
    declared = [Declared(tensor.name, tensor.datatype, tensor.shape) for tensor in request.inputs]
    counts = tensors.check_inputs(declared, runtime, settings)
    sizes = [tensor.parameters.binary_data_size if tensor.parameters else None for tensor in request.inputs]
    chunks = codec.split_binary(sizes, binary)
    return {
        tensor.name: _decode(tensor, chunk, count)
        for tensor, chunk, count in zip(request.inputs, chunks, counts, strict=True)
    }


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
    asked = []
    for output in request.outputs or []:
        parameters = output.parameters
        binary = (
            binary_default if parameters is None or parameters.binary_data is None else parameters.binary_data
        )
        classes = parameters.classification if parameters is not None else None
        asked.append(Wanted(output.name, binary, classes))
    return tensors.check_outputs(asked, binary_default, runtime)


def encode_output(
    output: Wanted, results: dict[str, np.ndarray], labels: list[str]
) -> tuple[dict[str, Any], bytes | None]:
    """The output's ``$response_output`` and, for a binary output, its bytes."""
    values = tensors.answered(output, results, labels)
    entry: dict[str, Any] = {"name": output.name, "datatype": values.datatype, "shape": values.shape}
    if output.binary:
        chunk = values.raw()
        entry["parameters"] = {"binary_data_size": len(chunk)}
        return entry, chunk
    if values.items is not None:
        entry["data"] = [item.decode() for item in values.items]
    elif values.array is not None:
        entry["data"] = values.array.ravel()
    return entry, None
