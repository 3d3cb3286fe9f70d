"""``ModelInfer``'s tensors between protobuf and :mod:`service.api.oip.tensors`.

In: each input's elements come either from ``raw_input_contents`` (one entry per input, in the binary
framing of the HTTP protocol, read by :mod:`service.api.oip.codec`) or from its typed ``contents`` field
for its datatype (``bytes_contents`` for BYTES, ``int64_contents`` for INT64...), never both. Out: every
output in ``raw_output_contents``, as Triton answers and ``tritonclient.grpc`` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.api.oip import codec, tensors
from service.api.oip.tensors import Declared, Wanted
from service.api.oip_grpc import grpc_predict_v2_pb2 as pb
from service.engine.runtime import ModelRuntime
from service.errors import InvalidRequest
from service.settings import Settings

# The typed contents field of each datatype (InferTensorContents).
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
TRUNCATE = "truncate"  # request parameter (bool): false refuses texts longer than the model's max_length
CLASSIFICATION = "classification"  # output parameter (int64): the k best classes, "<score>:<index>:<label>"


@dataclass(frozen=True)
class Decoded:
    """A ModelInfer request, checked: its tensors by name, their shapes, the outputs and truncation."""

    tensors: dict[str, codec.Tensor]
    shapes: dict[str, Sequence[int]]
    wanted: list[Wanted]
    truncate: bool


def decode(request: pb.ModelInferRequest, runtime: ModelRuntime, settings: Settings) -> Decoded:
    declared = [Declared(tensor.name, tensor.datatype, list(tensor.shape)) for tensor in request.inputs]
    counts = tensors.check_inputs(declared, runtime, settings)
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidRequest(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs "
            "(one per input, in the order of inputs, when used)"
        )
    decoded: dict[str, codec.Tensor] = {}
    for index, (tensor, count) in enumerate(zip(request.inputs, counts, strict=True)):
        if raw:
            if tensor.HasField("contents"):
                raise InvalidRequest(f"input {tensor.name}: send contents or raw_input_contents, not both")
            decoded[tensor.name] = codec.decode_binary(
                tensor.name, tensor.datatype, count, memoryview(raw[index])
            )
        else:
            decoded[tensor.name] = _typed(tensor, count)
    return Decoded(
        decoded,
        {tensor.name: list(tensor.shape) for tensor in request.inputs},
        _wanted(request, runtime),
        _truncate(request),
    )


def _typed(tensor: pb.ModelInferRequest.InferInputTensor, count: int) -> codec.Tensor:
    field = CONTENTS_FIELDS[tensor.datatype]
    for descriptor, _ in tensor.contents.ListFields():
        if descriptor.name != field:
            raise InvalidRequest(f"input {tensor.name}: {tensor.datatype} elements go in contents.{field}")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise InvalidRequest(
            f"input {tensor.name}: {len(values)} elements in contents.{field}, but its shape holds {count} "
            "(send contents, or raw_input_contents for every input)"
        )
    if tensor.datatype == "BYTES":
        return list(values)
    return np.asarray(values, dtype=np.dtype(codec.NUMPY_TYPES[tensor.datatype]))


def _wanted(request: pb.ModelInferRequest, runtime: ModelRuntime) -> list[Wanted]:
    asked = []
    for output in request.outputs:
        classes = None
        if CLASSIFICATION in output.parameters:
            parameter = output.parameters[CLASSIFICATION]
            if parameter.WhichOneof("parameter_choice") not in ("int64_param", "uint64_param"):
                raise InvalidRequest(f"output {output.name[:80]}: {CLASSIFICATION} must be an integer")
            classes = getattr(parameter, parameter.WhichOneof("parameter_choice"))
        asked.append(Wanted(output.name, True, classes))
    return tensors.check_outputs(asked, True, runtime)


def _truncate(request: pb.ModelInferRequest) -> bool:
    if TRUNCATE not in request.parameters:
        return True
    parameter = request.parameters[TRUNCATE]
    if parameter.WhichOneof("parameter_choice") != "bool_param":
        raise InvalidRequest(f"parameter {TRUNCATE} must be a bool (bool_param)")
    return parameter.bool_param


def encode(
    request: pb.ModelInferRequest,
    runtime: ModelRuntime,
    wanted: Sequence[Wanted],
    values_by_name: dict[str, np.ndarray],
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(
        model_name=runtime.name, model_version=str(runtime.version), id=request.id
    )
    for output in wanted:
        values = tensors.answered(output, values_by_name, runtime.labels)
        response.outputs.add(name=values.name, datatype=values.datatype, shape=values.shape)
        response.raw_output_contents.append(values.raw())
    return response
