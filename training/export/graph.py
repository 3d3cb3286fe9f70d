"""torch → ONNX (native LSTM / GRU / RNN nodes), parity against onnxruntime, golden examples, int8 variant.

The TorchScript exporter (``dynamo=False``) is used on purpose: in torch 2.13 the dynamo exporter fails
on ``pack_padded_sequence`` (its shapes depend on the data), while the TorchScript one turns packing into
the LSTM node's ``sequence_lens`` input.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from service.bundle import INPUTS, PARITY_TOLERANCE, GoldenExample
from training.export import quiet
from training.loop.batches import pad
from training.model.cells import cell_of
from training.model.classifier import LSTMClassifier, graph_outputs

logger = logging.getLogger(__name__)

OPSET = 17


class ExportError(RuntimeError):
    """The exported graph is wrong (no native recurrent node, parity broken); no bundle is written."""


def export_onnx(model: LSTMClassifier, path: Path) -> Path:
    """Write ``model`` as an ONNX graph with dynamic batch and sequence axes; check its recurrent nodes.

    The outputs are the bundle contract's, less ``c_n`` for cells without a cell state (GRU, RNN)."""
    model = model.eval()
    outputs = list(model.output_names)
    ids, lengths = pad([[2, 3, 4], [5, 6]])  # any valid example; every axis that varies is declared dynamic
    dynamic_axes = {
        "ids": {0: "batch", 1: "sequence"},
        "lengths": {0: "batch"},
        "logits": {0: "batch"},
        "hidden_states": {0: "batch", 1: "sequence"},
        "h_n": {1: "batch"},
        "c_n": {1: "batch"},
    }
    dynamic_axes = {name: axes for name, axes in dynamic_axes.items() if name in INPUTS or name in outputs}
    with warnings.catch_warnings(), quiet.native_stderr_without(quiet.TORCH_EXPORT_NOISE):
        # the exporter warns that an LSTM with batch_first + packing cannot be re-scripted; not our use
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, lengths),
            str(path),
            input_names=list(INPUTS),
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    # an ensemble (training.model.ensemble) holds every member's layers
    check_graph(path, getattr(model, "recurrent_nodes", model.config.num_layers), model.config.cell)
    return Path(path)


def check_graph(path: Path, num_layers: int, cell: str = "lstm") -> None:
    """One native ``cell`` node per layer (its int8 form counts), and exactly the expected inputs and
    outputs: anything else means the exporter produced a different model."""
    graph = onnx.load(str(path)).graph
    onnx.checker.check_model(str(path))
    spec = cell_of(cell)
    kinds = {spec.onnx_op, spec.quantized_op} - {None}
    nodes = [node for node in graph.node if node.op_type in kinds]
    if len(nodes) != num_layers:
        raise ExportError(f"expected {num_layers} native {spec.onnx_op} node(s), the graph has {len(nodes)}")
    outputs = list(graph_outputs(cell))
    if [i.name for i in graph.input] != list(INPUTS) or [o.name for o in graph.output] != outputs:
        raise ExportError(
            f"graph inputs/outputs are {[i.name for i in graph.input]} → {[o.name for o in graph.output]}"
        )


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_logits(
    path_or_session: Path | ort.InferenceSession, sequences: Sequence[Sequence[int]], batch_size: int = 32
) -> np.ndarray:
    runner = (
        path_or_session if isinstance(path_or_session, ort.InferenceSession) else session(path_or_session)
    )
    outputs = []
    for start in range(0, len(sequences), batch_size):
        ids, lengths = pad(sequences[start : start + batch_size])
        outputs.append(runner.run(["logits"], {"ids": ids.numpy(), "lengths": lengths.numpy()})[0])
    return np.concatenate(outputs)


@torch.no_grad()
def check_parity(
    model: LSTMClassifier,
    path: Path,
    sequences: Sequence[Sequence[int]],
    batch_size: int = 32,
    tolerance: float = PARITY_TOLERANCE,
) -> dict[str, Any]:
    """Run the same padded mixed-length batches through torch and onnxruntime; raise :class:`ExportError`
    if any logit differs by more than ``tolerance``. Returns the max abs difference of every output."""
    model = model.eval()
    runner = session(path)
    compared = [name for name in model.output_names if name != "embedding_matrix"]
    worst = dict.fromkeys(compared, 0.0)
    agree, batches = 0, 0
    for start in range(0, len(sequences), batch_size):
        ids, lengths = pad(sequences[start : start + batch_size])
        expected = [tensor.numpy() for tensor in model(ids, lengths)[: len(compared)]]
        actual = runner.run(compared, {"ids": ids.numpy(), "lengths": lengths.numpy()})
        for name, want, got in zip(compared, expected, actual, strict=True):
            if want.shape != got.shape:
                raise ExportError(f"{name}: torch shape {want.shape} but onnxruntime {got.shape}")
            worst[name] = max(worst[name], float(np.abs(want - got).max()))
        agree += int((expected[0].argmax(1) == actual[0].argmax(1)).sum())
        batches += 1
    report = {
        "max_abs_logit_diff": worst["logits"],
        "max_abs_hidden_states_diff": worst["hidden_states"],
        "max_abs_h_n_diff": worst["h_n"],
        **({"max_abs_c_n_diff": worst["c_n"]} if "c_n" in worst else {}),
        "argmax_agreement": agree / max(len(sequences), 1),
        "batches": batches,
        "batch_size": batch_size,
        "texts": len(sequences),
        "tolerance": tolerance,
    }
    if worst["logits"] > tolerance:
        raise ExportError(
            f"torch vs onnxruntime logits differ by {worst['logits']:.2e} > {tolerance:.0e}; "
            "refusing to write the bundle"
        )
    logger.info(
        "parity torch vs onnxruntime on %d texts in %d batches: max abs logit diff %.2e",
        len(sequences),
        batches,
        worst["logits"],
    )
    return report


def pick_golden(texts: Sequence[str], sequences: Sequence[Sequence[int]], count: int = 6) -> list[int]:
    """Indices of ``count`` texts spread over the length range (shortest, longest and between)."""
    order = sorted(range(len(texts)), key=lambda index: (len(sequences[index]), index))
    if len(order) <= count:
        return order
    return sorted({order[round(step * (len(order) - 1) / (count - 1))] for step in range(count)})


@torch.no_grad()
def golden_examples(
    model: LSTMClassifier | None,
    texts: Sequence[str],
    sequences: Sequence[Sequence[int]],
    onnx_path: Path | None = None,
) -> tuple[GoldenExample, ...]:
    """Each text alone with its ids and logits: ``model``'s, or ``onnx_path``'s through onnxruntime."""
    if onnx_path is None and model is None:
        raise ValueError("golden examples need a torch model or an ONNX file")
    runner = session(onnx_path) if onnx_path is not None else None
    golden = []
    for text, sequence in zip(texts, sequences, strict=True):
        if runner is None:
            model.eval()
            ids, lengths = pad([sequence])
            logits = model(ids, lengths)[0][0].tolist()
        else:
            logits = ort_logits(runner, [sequence])[0].tolist()
        golden.append(
            GoldenExample(text=text, ids=tuple(sequence), logits=tuple(round(value, 7) for value in logits))
        )
    return tuple(golden)


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantization (7-bit weights) of the LSTM and the classifier's matrices. The embedding
    stays float: it is a lookup, not compute, and ``embedding_matrix`` must keep returning the vectors."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet.root_log_without(quiet.ORT_QUANTIZATION_NOISE):  # harmless here: see training.export.quiet
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["LSTM", "MatMul", "Gemm"],
            # 7-bit weights: an x86 CPU without VNNI sums pairs of u8 x s8 products in saturating 16-bit
            # registers, which full-range int8 weights overflow (logits moved by 0.4 on a tiny model);
            # 2 x 255 x 64 fits, so every CPU computes the same integers and the golden logits hold on all.
            reduce_range=True,
        )
    return Path(target)
