"""The recurrent cells a classifier can use: LSTM, GRU and a plain (tanh) RNN.

Each cell is one PyTorch module family (``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``) that the TorchScript
exporter turns into one native ONNX node per layer (``LSTM`` / ``GRU`` / ``RNN``), packing becoming the
node's ``sequence_lens`` input. Only the LSTM has a cell state, so only an LSTM graph has a ``c_n`` output.

Per direction and layer a cell holds ``gates`` blocks, each an input matrix (hidden × input), a recurrent
matrix (hidden × hidden) and a bias: gates × (input + hidden + 1) × hidden parameters. PyTorch (like cuDNN)
keeps two bias vectors per gate block (b_ih and b_hh), so it stores gates × (input + hidden + 2) × hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Cell:
    name: str
    gates: int
    gate_names: str
    module: type[nn.RNNBase]
    onnx_op: str
    quantized_op: str | None  # the node onnxruntime's dynamic quantization turns it into, if any
    has_cell_state: bool
    # the op the module itself calls: (input, hx, weights, has_biases, num_layers, dropout, train,
    # bidirectional, batch_first) → (output, h_n[, c_n])
    kernel: Callable[..., Any]

    def build(
        self, input_dim: int, hidden_dim: int, num_layers: int, bidirectional: bool, dropout: float
    ) -> nn.RNNBase:
        options: dict[str, Any] = {}
        if self.module is nn.RNN:
            options["nonlinearity"] = "tanh"  # ONNX RNN's default activation; relu is not offered
        return self.module(
            input_size=input_dim,
            hidden_size=hidden_dim,
            num_layers=num_layers,
            bidirectional=bidirectional,
            batch_first=True,
            # applied between stacked layers only (PyTorch warns, and does nothing else, for 1 layer)
            dropout=dropout if num_layers > 1 else 0.0,
            **options,
        )

    def run_direction(
        self, source: torch.Tensor, weights: list[torch.Tensor], hidden_dim: int, training: bool
    ) -> torch.Tensor:
        """One direction of one layer over a padded (batch, seq, input) tensor from zero state:
        the output (batch, seq, hidden). Used by the training forward pass (see the classifier)."""
        zeros = source.new_zeros(1, source.shape[0], hidden_dim)  # (1, batch, hidden)
        state: Any = (zeros, zeros) if self.has_cell_state else zeros
        return self.kernel(source, state, weights, True, 1, 0.0, training, False, True)[0]


CELLS: dict[str, Cell] = {
    "lstm": Cell(
        "lstm", 4, "input, forget, cell, output", nn.LSTM, "LSTM", "DynamicQuantizeLSTM", True, torch.lstm
    ),
    "gru": Cell("gru", 3, "reset, update, new", nn.GRU, "GRU", None, False, torch.gru),
    "rnn": Cell("rnn", 1, "one tanh unit", nn.RNN, "RNN", None, False, torch.rnn_tanh),
}
CELL_NAMES = tuple(CELLS)


def cell_of(name: str) -> Cell:
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"cell must be one of {', '.join(CELL_NAMES)}, got {name!r}") from None


def refuse_unexportable(options: dict[str, Any]) -> None:
    """Options a recurrent layer could take but the ONNX export cannot reproduce faithfully: refuse them
    before training rather than export a different model."""
    if options.get("proj_size"):
        raise ValueError(
            "proj_size (an LSTM with a projection) has no working ONNX export in torch 2.13: "
            "the exported graph would not compute the trained model; use hidden_dim instead"
        )
    if options.get("nonlinearity", "tanh") != "tanh":
        raise ValueError("the plain RNN cell is exported as ONNX RNN with tanh only")


def layer_parameter_counts(
    cell: Cell, input_dim: int, hidden_dim: int, directions: int, layer: int
) -> dict[str, Any]:
    """One stacked layer's parameters: the textbook count (one bias per gate) and PyTorch's (two)."""
    gates = cell.gates
    textbook = gates * (input_dim + hidden_dim + 1) * hidden_dim
    pytorch = gates * (input_dim + hidden_dim + 2) * hidden_dim
    return {
        "layer": layer,
        "cell": cell.name,
        "gates": gates,
        "input_dim": input_dim,
        "hidden_dim": hidden_dim,
        "directions": directions,
        "textbook_per_direction": textbook,
        "textbook_formula": f"{gates} × ({input_dim} + {hidden_dim} + 1) × {hidden_dim} = {textbook}",
        "pytorch_per_direction": pytorch,
        "pytorch_formula": f"{gates} × ({input_dim} + {hidden_dim} + 2) × {hidden_dim} = {pytorch} "
        "(two biases)",
        "pytorch_total": pytorch * directions,
    }


def formula_text(cell: Cell) -> str:
    return (
        f"{cell.name.upper()}: per direction and layer {cell.gates} × (input + hidden + 1) × hidden "
        f"({cell.gates} gate block(s): {cell.gate_names}; each an input matrix, a recurrent matrix and one "
        f"bias); PyTorch stores two biases (b_ih, b_hh), hence {cell.gates} × (input + hidden + 2) × hidden"
    )
