"""The tensors a model takes and gives over the Open Inference Protocol, read from its ONNX graph.

Inputs: ``TEXT`` (BYTES ``[N]`` or ``[N, 1]``; the service tokenizes it as ``/classify`` does), or
``INPUT_IDS`` (INT64 ``[N, T]``) with ``LENGTHS`` (INT64 ``[N]``) for clients that tokenize themselves.
Outputs: ``PROBS``/``LOGITS`` (FP32 ``[N, C]``; ``PROBS`` are /classify's scores, softmax or one sigmoid
per label), ``LABEL`` (BYTES ``[N]``: /classify's ``label``, empty when a multi-label model picks none),
``LABELS`` (BYTES ``[N, C]``, multi-label models only: /classify's ``labels``, the labels over their
thresholds best first, padded with empty strings; the thresholds are in the model configuration's
``parameters``), ``HIDDEN_STATES`` (FP32 ``[N, T, H*D]``), ``H_N``/``C_N`` (FP32, batch first:
``[N, L*D, H]``; ``C_N`` for LSTM cells only). ``-1`` marks a variable dimension.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from service.engine.runtime import ModelRuntime

PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"
TEXT, INPUT_IDS, LENGTHS = "TEXT", "INPUT_IDS", "LENGTHS"
PROBS, LOGITS, LABEL, LABELS = "PROBS", "LOGITS", "LABEL", "LABELS"
HIDDEN_STATES, H_N, C_N = "HIDDEN_STATES", "H_N", "C_N"
INPUT_TYPES = {TEXT: "BYTES", INPUT_IDS: "INT64", LENGTHS: "INT64"}
OUTPUT_NAMES = (PROBS, LOGITS, LABEL, LABELS, HIDDEN_STATES, H_N, C_N)
CLASS_SCORES = frozenset({PROBS, LOGITS})  # the outputs the classification extension can rank
# Triton's model configuration names for the protocol's datatypes.
CONFIG_TYPES = {"BYTES": "TYPE_STRING", "INT64": "TYPE_INT64", "FP32": "TYPE_FP32"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # batch first; -1 where the size varies

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def inputs(runtime: ModelRuntime) -> list[TensorSpec]:
    return [
        TensorSpec(TEXT, "BYTES", (-1,)),
        TensorSpec(INPUT_IDS, "INT64", (-1, -1)),
        TensorSpec(LENGTHS, "INT64", (-1,)),
    ]


def outputs(runtime: ModelRuntime) -> list[TensorSpec]:
    classes = len(runtime.labels)
    features = runtime.output_shape("hidden_states")[-1]  # hidden size x directions
    layers_directions, _, hidden = runtime.output_shape("h_n")  # (L*D, batch, H) in the graph
    specs = [
        TensorSpec(PROBS, "FP32", (-1, classes)),
        TensorSpec(LOGITS, "FP32", (-1, classes)),
        TensorSpec(LABEL, "BYTES", (-1,)),
        TensorSpec(LABELS, "BYTES", (-1, classes)),
        TensorSpec(HIDDEN_STATES, "FP32", (-1, -1, features)),
        TensorSpec(H_N, "FP32", (-1, layers_directions, hidden)),
    ]
    if runtime.has_cell_state:  # only an LSTM has a cell state; GRU and RNN graphs have no c_n
        specs.append(TensorSpec(C_N, "FP32", (-1, layers_directions, hidden)))
    names = output_names(runtime)
    return [spec for spec in specs if spec.name in names]


def output_names(runtime: ModelRuntime) -> tuple[str, ...]:
    """The outputs this model gives: every one of :data:`OUTPUT_NAMES` but ``C_N`` for a GRU or RNN, and
    ``LABELS`` for a multi-label model only."""
    left_out = {C_N} if not runtime.has_cell_state else set()
    if not runtime.multi_label:
        left_out.add(LABELS)
    return tuple(name for name in OUTPUT_NAMES if name not in left_out)


def model_metadata(runtime: ModelRuntime, versions: list[int]) -> dict[str, Any]:
    """``$metadata_model_response``."""
    return {
        "name": runtime.name,
        "versions": [str(version) for version in versions],
        "platform": PLATFORM,
        "inputs": [spec.metadata() for spec in inputs(runtime)],
        "outputs": [spec.metadata() for spec in outputs(runtime)],
    }


def _config_tensor(spec: TensorSpec) -> dict[str, Any]:
    tensor: dict[str, Any] = {
        "name": spec.name,
        "data_type": CONFIG_TYPES[spec.datatype],
        "dims": list(spec.shape[1:]),  # with max_batch_size > 0, dims leave the batch dimension out
    }
    if spec.name == TEXT:  # [N, 1] as perf_analyzer and Triton clients send it; [N] is accepted too
        tensor.update(dims=[1], reshape={"shape": []})
    if spec.name == LENGTHS:
        tensor.update(dims=[1], reshape={"shape": []})
    if spec.name in (TEXT, INPUT_IDS, LENGTHS):
        tensor["optional"] = True  # TEXT, or INPUT_IDS with LENGTHS
    if spec.name in (PROBS, LOGITS):
        tensor["label_filename"] = "labels.txt"
    return tensor


def model_config(runtime: ModelRuntime, max_batch_size: int, version: int) -> dict[str, Any]:
    """Triton's model configuration (what ``tritonclient``'s ``get_model_config`` reads)."""
    return {
        "name": runtime.name,
        "platform": PLATFORM,
        "backend": BACKEND,
        "version_policy": {"specific": {"versions": [version]}},
        "max_batch_size": max_batch_size,
        "input": [_config_tensor(spec) for spec in inputs(runtime)],
        "output": [_config_tensor(spec) for spec in outputs(runtime)],
        "parameters": _parameters(runtime),
    }


def _parameters(runtime: ModelRuntime) -> dict[str, dict[str, str]]:
    """The model's own figures a client needs: the task, and for a multi-label model each label's
    threshold (JSON), by which LABEL and LABELS are decided."""
    parameters = {
        "max_length": {"string_value": str(runtime.tokenizer.max_length)},
        "task": {"string_value": runtime.task},
    }
    if runtime.multi_label:
        thresholds = dict(runtime.manifest.thresholds or {})
        parameters["thresholds"] = {"string_value": json.dumps(thresholds, sort_keys=True)}
    return parameters
