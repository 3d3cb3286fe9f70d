"""GRU and plain-RNN cells: shapes, the training forward equal to the exported one, native ONNX GRU/RNN
nodes with the parity gate, no c_n output, the per-cell parameter formula, refusals up front."""

from __future__ import annotations

import random

import numpy as np
import onnx
import pytest
import torch

from training.export import graph as export
from training.loop.batches import pad
from training.model.classifier import ModelConfig, RecurrentClassifier
from training.model.summary import parameter_summary

TEXTS = [[5, 6, 7, 8, 9, 10, 11], [12, 13], [14, 15, 16, 17], [18]]
NO_CELL_STATE = ["logits", "hidden_states", "h_n", "embedding_matrix"]


def _model(cell: str, **settings) -> RecurrentClassifier:
    torch.manual_seed(0)
    defaults = {"vocab_size": 40, "num_labels": 3, "embedding_dim": 10, "hidden_dim": 7, "cell": cell}
    return RecurrentClassifier(ModelConfig(**{**defaults, **settings})).eval()


def _texts(count: int = 70, seed: int = 1) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(1, 40) for _ in range(rng.choice([1, 2, 5, 17, 33]))] for _ in range(count)]


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_forward_returns_no_cell_state_and_padding_changes_nothing(cell: str) -> None:
    model = _model(cell, num_layers=2, bidirectional=True)
    ids, lengths = pad(TEXTS)
    with torch.no_grad():
        outputs = model(ids, lengths)
        assert model.output_names == tuple(NO_CELL_STATE) and len(outputs) == 4
        logits, hidden, h_n, embedding = outputs
        assert logits.shape == (4, 3) and hidden.shape == (4, 7, 14) and h_n.shape == (4, 4, 7)
        for row, text in enumerate(TEXTS):
            alone = model(*pad([text]))
            torch.testing.assert_close(logits[row], alone[0][0], atol=1e-6, rtol=0)
            assert torch.all(hidden[row, len(text) :] == 0)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
@pytest.mark.parametrize(("pooling", "bidirectional", "layers"), [("max", True, 2), ("last", False, 1)])
def test_training_forward_equals_the_exported_forward(cell, pooling, bidirectional, layers) -> None:
    model = _model(cell, pooling=pooling, bidirectional=bidirectional, num_layers=layers)
    ids, lengths = pad(TEXTS)
    with torch.no_grad():
        torch.testing.assert_close(
            model.forward_train(ids, lengths), model(ids, lengths)[0], atol=1e-6, rtol=0
        )
    model.forward_train(ids, lengths).sum().backward()
    fast = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    model(ids, lengths)[0].sum().backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(fast[name], parameter.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(2, True), (1, False)])
def test_export_has_native_nodes_no_c_n_and_passes_the_parity_gate(tmp_path, cell, layers, bidirectional):
    model = _model(cell, num_layers=layers, bidirectional=bidirectional)
    path = export.export_onnx(model, tmp_path / "model.onnx")
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == NO_CELL_STATE
    assert sum(node.op_type == cell.upper() for node in graph.node) == layers
    assert not any(node.op_type in ("LSTM", "Loop", "Scan") for node in graph.node)
    report = export.check_parity(model, path, _texts(), batch_size=32)
    assert report["max_abs_logit_diff"] < 1e-5 and report["max_abs_h_n_diff"] < 1e-5
    assert "max_abs_c_n_diff" not in report
    session = export.session(path)
    ids, lengths = pad(_texts(5))
    h_n = session.run(["h_n"], {"ids": ids.numpy(), "lengths": lengths.numpy()})[0]
    np.testing.assert_allclose(h_n, model(ids, lengths)[2].detach().numpy(), atol=1e-5)


def test_parity_gate_refuses_a_graph_that_computes_something_else(tmp_path) -> None:
    model = _model("gru")
    path = export.export_onnx(model, tmp_path / "model.onnx")
    with torch.no_grad():
        model.classifier.bias.add_(1e-3)
    with pytest.raises(export.ExportError, match="refusing"):
        export.check_parity(model, path, _texts())


@pytest.mark.parametrize(("cell", "gates"), [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_parameter_summary_states_each_cells_formula(cell: str, gates: int) -> None:
    model = _model(cell, embedding_dim=20, hidden_dim=6, num_layers=2, bidirectional=True)
    summary = parameter_summary(model)
    first, second = summary["recurrent_layers"]
    assert first["textbook_per_direction"] == gates * (20 + 6 + 1) * 6
    assert first["pytorch_per_direction"] == gates * (20 + 6 + 2) * 6
    assert summary["per_layer"][cell] == 2 * (gates * (20 + 6 + 2) * 6 + gates * (12 + 6 + 2) * 6)
    assert f"{gates} × (input + hidden + 1) × hidden" in summary["recurrent_formula"]
    assert summary["total"] == sum(p.numel() for p in model.parameters())


def test_unknown_cells_and_unexportable_options_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="cell must be one of lstm, gru, rnn"):
        ModelConfig(cell="transformer")
    with pytest.raises(ValueError, match="proj_size .* no working ONNX export"):
        ModelConfig.from_dict({"cell": "lstm", "proj_size": 4})


def test_checkpoints_from_before_the_cells_still_load() -> None:
    model = _model("lstm")
    old_names = {key.replace("recurrent.", "lstm."): value for key, value in model.state_dict().items()}
    again = _model("lstm", embedding_dropout=0.2)
    again.load_state_dict(old_names)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)


def test_the_command_refuses_an_unknown_cell_and_proj_size_before_writing_anything(tmp_path, capsys) -> None:
    from support.data import tiny_examples, write_csv

    from training.cli import main

    data = write_csv(tmp_path / "tiny.csv", tiny_examples("en", per_label=5))
    common = ["train", "--data", str(data), "--name", "refused", "--store", str(tmp_path / "store")]
    with pytest.raises(SystemExit) as exited:
        main([*common, "--cell", "lsmt"])
    assert exited.value.code == 2 and "invalid choice: 'lsmt'" in capsys.readouterr().err
    assert main([*common, "--proj-size", "4", "--run-dir", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "store").exists() and not (tmp_path / "run").exists()
