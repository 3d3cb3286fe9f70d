"""The exported graph as a bundle's reader sees it: its declared shapes and opset, its recurrent nodes for
every cell and for an ensemble, the graph check's refusals, the parity session, the golden examples'
spread and the int8 variant's quantized operators (small real models, real exports)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch

from training.export import graph as export
from training.export.graph import ExportError
from training.model.classifier import LSTMClassifier, ModelConfig
from training.model.ensemble import SeedEnsemble


def _model(cell: str = "lstm", layers: int = 1, seed: int = 3) -> LSTMClassifier:
    torch.manual_seed(seed)
    config = ModelConfig(
        vocab_size=40, num_labels=3, cell=cell, embedding_dim=10, hidden_dim=7, num_layers=layers
    )
    return LSTMClassifier(config).eval()


def _shapes(path: Path) -> dict[str, list[int | str]]:
    graph = onnx.load(str(path)).graph
    return {
        value.name: [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
        for value in [*graph.input, *graph.output]
    }


@pytest.fixture(scope="module")
def lstm_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export.export_onnx(_model(), tmp_path_factory.mktemp("lstm") / "model.onnx")


def test_the_graph_declares_batch_and_sequence_axes_by_name_and_opset_17(lstm_graph: Path) -> None:
    assert _shapes(lstm_graph) == {
        "ids": ["batch", "sequence"],
        "lengths": ["batch"],
        "logits": ["batch", 3],
        "hidden_states": ["batch", "sequence", 14],
        "h_n": [2, "batch", 7],
        "c_n": [2, "batch", 7],
        "embedding_matrix": [40, 10],
    }
    assert [(entry.domain, entry.version) for entry in onnx.load(str(lstm_graph)).opset_import] == [("", 17)]


def test_a_gru_of_two_layers_declares_its_axes_without_a_cell_state(tmp_path: Path) -> None:
    path = export.export_onnx(_model("gru", layers=2), tmp_path / "model.onnx")

    assert _shapes(path) == {
        "ids": ["batch", "sequence"],
        "lengths": ["batch"],
        "logits": ["batch", 3],
        "hidden_states": ["batch", "sequence", 14],
        "h_n": [4, "batch", 7],
        "embedding_matrix": [40, 10],
    }
    assert [node.op_type for node in onnx.load(str(path)).graph.node].count("GRU") == 2


def test_the_recurrent_weights_are_stored_folded_not_rebuilt_on_every_call(lstm_graph: Path) -> None:
    graph = onnx.load(str(lstm_graph)).graph
    stored = {initializer.name for initializer in graph.initializer}
    (lstm,) = [node for node in graph.node if node.op_type == "LSTM"]
    weights, recurrence, bias = lstm.input[1:4]  # W, R, B

    assert {weights, recurrence, bias} <= stored, (list(lstm.input), sorted(stored))


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_every_cell_exports_with_its_own_native_node(cell: str, tmp_path: Path) -> None:
    path = export.export_onnx(_model(cell), tmp_path / "model.onnx")

    assert [node.op_type for node in onnx.load(str(path)).graph.node].count(cell.upper()) == 1


def test_an_ensemble_exports_one_node_per_member_and_a_single_count_is_refused(tmp_path: Path) -> None:
    members = [_model(seed=seed) for seed in (1, 2)]
    path = export.export_onnx(SeedEnsemble(members).eval(), tmp_path / "model.onnx")

    assert [node.op_type for node in onnx.load(str(path)).graph.node].count("LSTM") == 2
    with pytest.raises(ExportError) as refused:
        export.check_graph(path, 1, "lstm")
    assert str(refused.value) == "expected 1 native LSTM node(s), the graph has 2"


def test_a_graph_with_an_output_missing_is_refused_naming_its_inputs_and_outputs(
    lstm_graph: Path, tmp_path: Path
) -> None:
    model = onnx.load(str(lstm_graph))
    model.graph.output.pop()  # embedding_matrix
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))

    with pytest.raises(ExportError) as refused:
        export.check_graph(path, 1, "lstm")

    assert str(refused.value) == (
        "graph inputs/outputs are ['ids', 'lengths'] → ['logits', 'hidden_states', 'h_n', 'c_n']"
    )


def test_a_graph_of_another_cell_is_refused_by_the_cell_it_should_hold(lstm_graph: Path) -> None:
    with pytest.raises(ExportError) as refused:
        export.check_graph(lstm_graph, 1, "gru")

    assert str(refused.value) == "expected 1 native GRU node(s), the graph has 0"
    export.check_graph(lstm_graph, 1)  # an LSTM unless told otherwise


def test_the_parity_session_runs_on_one_thread_without_spinning(lstm_graph: Path) -> None:
    options = export.session(lstm_graph).get_session_options()

    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_golden_examples_spread_from_the_shortest_to_the_longest_text() -> None:
    lengths = [5, 1, 9, 3, 3, 12, 7, 2, 8, 4, 6, 10]  # text i has lengths[i] tokens
    sequences = [[1] * length for length in lengths]
    texts = [f"text {index}" for index in range(len(lengths))]

    # by length: 1 (1), 7 (2), 3 (3), 4 (3), 9 (4), 0 (5), 10 (6), 6 (7), 8 (8), 2 (9), 11 (10), 5 (12)
    assert export.pick_golden(texts, sequences) == [1, 2, 3, 5, 6, 9]  # places 0, 2, 4, 7, 9, 11 of 12
    assert export.pick_golden(texts, sequences, count=3) == [1, 5, 10]  # places 0, 6 (5.5 rounds even), 11
    assert export.pick_golden(texts, sequences, count=2) == [1, 5]
    # as many texts as asked for, or fewer: all of them, shortest first
    assert export.pick_golden(texts[:6], sequences[:6], count=6) == [1, 3, 4, 0, 2, 5]
    assert export.pick_golden(texts[:4], sequences[:4]) == [1, 3, 0, 2]


def test_the_int8_variant_quantizes_the_recurrent_and_classifier_weights_not_the_embedding(
    lstm_graph: Path, tmp_path: Path
) -> None:
    path = export.quantize_int8(lstm_graph, tmp_path / "int8.onnx")

    kinds = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert kinds.count("DynamicQuantizeLSTM") == 1 and "LSTM" not in kinds
    assert "MatMulInteger" in kinds and "Gemm" not in kinds  # the classifier's matrix
    assert "DequantizeLinear" not in kinds  # nothing stored as int8 is turned back into floats
    # 7-bit weights: a CPU without VNNI adds two u8 x s8 products in 16 bits: 2 x 255 x 64 = 32,640 fits
    weights = [
        onnx.numpy_helper.to_array(tensor)
        for tensor in onnx.load(str(path)).graph.initializer
        if tensor.name.endswith("_quantized")
    ]
    assert len(weights) == 3  # the LSTM's input and recurrent matrices and the classifier's
    assert all(array.dtype == np.int8 and -64 <= array.min() and array.max() <= 64 for array in weights)
    ids, lengths = np.array([[2, 3, 4]], dtype=np.int64), np.array([3], dtype=np.int64)
    float_vectors, int8_vectors = (
        export.session(graph).run(["embedding_matrix"], {"ids": ids, "lengths": lengths})[0]
        for graph in (lstm_graph, path)
    )
    assert float_vectors.dtype == int8_vectors.dtype == np.float32
    np.testing.assert_array_equal(int8_vectors, float_vectors)  # the vectors themselves, not a rounding
