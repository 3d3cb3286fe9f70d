"""Embedding → recurrent layers (LSTM, GRU or tanh RNN) → pooling → dropout → Linear, the classifier
behind every bundle.

The forward pass returns everything the ONNX graph exposes (see ``service/bundle/graph.py``), so the
exported graph and the torch model can never disagree about what they compute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from service.bundle import OUTPUTS
from training.model.cells import CELL_NAMES, cell_of, refuse_unexportable

POOLINGS = ("max", "mean", "last")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Plain, JSON-able description of the architecture (stored in checkpoints and manifests).

    ``vocab_size`` and ``num_labels`` come from the data: a config given to training leaves them 0 and
    training fills them in with :meth:`sized` once the vocabulary and the labels are known."""

    vocab_size: int = 0
    num_labels: int = 0
    cell: str = "lstm"  # lstm | gru | rnn (tanh): see training.model.cells
    embedding_dim: int = 128
    hidden_dim: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.3
    embedding_dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.cell not in CELL_NAMES:
            raise ValueError(f"cell must be one of {', '.join(CELL_NAMES)}, got {self.cell!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        for name in ("vocab_size", "num_labels"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 1 (0 until the data sets it), got {getattr(self, name)}")
        for name in ("embedding_dim", "hidden_dim", "num_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("dropout", "embedding_dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def sized(self, vocab_size: int, num_labels: int) -> ModelConfig:
        """This architecture for a vocabulary of ``vocab_size`` ids and ``num_labels`` classes."""
        return replace(self, vocab_size=vocab_size, num_labels=num_labels)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        refuse_unexportable(data)
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


class RecurrentClassifier(nn.Module):
    """A (stacked, optionally bidirectional) LSTM, GRU or tanh RNN over token embeddings with masked pooling
    over time.

    ``embedding_dim`` and ``hidden_dim`` are independent: layer 1 reads ``embedding_dim`` inputs, every
    later layer reads ``hidden_dim × directions``; one ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` holds the stack.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size < 1 or config.num_labels < 1:
            raise ValueError("the model needs vocab_size and num_labels >= 1 (ModelConfig.sized sets them)")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.cell = cell_of(config.cell)
        self.recurrent = self.cell.build(
            config.embedding_dim, config.hidden_dim, config.num_layers, config.bidirectional, config.dropout
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_dim * config.directions, config.num_labels)
        # checkpoints written before other cells existed name the LSTM "lstm"
        self._register_load_state_dict_pre_hook(_rename_lstm_keys)

    @property
    def lstm(self) -> nn.RNNBase:
        """The recurrent stack under its name from when every model was an LSTM."""
        return self.recurrent

    @property
    def output_names(self) -> tuple[str, ...]:
        """The graph outputs :meth:`forward` returns, in order: ``c_n`` only for the LSTM."""
        return graph_outputs(self.config.cell)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``ids`` (batch, seq) int64, padded with 0 after ``lengths`` (batch,) int64, every length >= 1.

        Returns ``logits`` (batch, labels), ``hidden_states`` (batch, seq, hidden × dirs) zero at padding,
        ``h_n`` (layers × dirs, batch, hidden), for the LSTM also ``c_n`` (same shape), and the embedding
        matrix (vocab, embedding_dim): the outputs named by :attr:`output_names`.
        """
        seq_len = ids.shape[1]
        embedded = self.embedding_dropout(self.embedding(ids))  # (batch, seq, embedding_dim)
        # Packing, not masking: the backward direction must start at each text's own last token, and
        # h_n/c_n must be taken there too. The ONNX exporter turns this into the node's sequence_lens.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, state = self.recurrent(packed)  # LSTM: (h_n, c_n); GRU, RNN: h_n
        h_n, c_n = state if self.cell.has_cell_state else (state, None)  # (layers × dirs, batch, hidden)
        hidden_states, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=seq_len)
        # hidden_states: (batch, seq, hidden × dirs), exactly 0 after each length
        # the top layer's final state of each direction: forward at the last token, backward at the first
        top = h_n[-self.config.directions :]  # (dirs, batch, hidden)
        final = top.transpose(0, 1).reshape(ids.shape[0], -1)  # (batch, hidden × dirs)
        pooled = self._pool(hidden_states, final, lengths)  # (batch, hidden × dirs)
        logits = self.classifier(self.dropout(pooled))  # (batch, labels)
        if c_n is None:
            return logits, hidden_states, h_n, self.embedding.weight
        return logits, hidden_states, h_n, c_n, self.embedding.weight

    def forward_train(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (batch, labels) by the same math as :meth:`forward`, for training only.

        PyTorch's CPU backward through a PackedSequence LSTM (GRU, RNN alike) is quadratic in the sequence
        length (every time step's slice back-propagates into a zero-filled copy of the input): 60 s for one
        64 × 600 BBC batch here, against 2 s for the fused kernel on a padded tensor. So training runs each
        direction of each layer on the padded tensor, the backward direction on every text reversed
        *within its own length*: padding comes after the last real step in both directions and never
        reaches a real one. Export and evaluation keep :meth:`forward` (packed → ONNX ``sequence_lens``);
        a test checks that both give the same logits.
        """
        config = self.config
        layer_input = self.embedding_dropout(self.embedding(ids))  # (batch, seq, embedding_dim)
        last_step = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, config.hidden_dim)
        for layer in range(config.num_layers):
            outputs, finals = [], []
            for direction in range(config.directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                weights = [
                    getattr(self.recurrent, f"{name}{suffix}")
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                ]
                source = _reverse_within_length(layer_input, lengths) if direction else layer_input
                # the op the module itself calls (torch.lstm / torch.gru / torch.rnn_tanh), one direction
                output = self.cell.run_direction(source, weights, config.hidden_dim, self.training)
                finals.append(
                    output.gather(1, last_step).squeeze(1)
                )  # (batch, hidden): after the last real step
                outputs.append(_reverse_within_length(output, lengths) if direction else output)
            layer_input = torch.cat(outputs, dim=2)  # (batch, seq, hidden × dirs)
            if layer < config.num_layers - 1:
                layer_input = nn.functional.dropout(layer_input, config.dropout, self.training)
        valid = _valid_steps(lengths, ids.shape[1]).unsqueeze(2)  # (batch, seq, 1)
        hidden_states = layer_input * valid  # 0 at padded steps, as pad_packed_sequence gives
        pooled = self._pool(hidden_states, torch.cat(finals, dim=1), lengths)
        return self.classifier(self.dropout(pooled))

    def _pool(self, hidden_states: torch.Tensor, final: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.config.pooling == "last":
            return final
        steps = torch.arange(hidden_states.shape[1], device=hidden_states.device)
        valid = (steps.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)  # (batch, seq, 1)
        if self.config.pooling == "max":
            # padded steps are 0, which could win the max over negative activations: mask them out
            return hidden_states.masked_fill(~valid, float("-inf")).max(dim=1).values
        return hidden_states.sum(dim=1) / lengths.unsqueeze(1).to(hidden_states.dtype)


LSTMClassifier = RecurrentClassifier  # the name from when every model was an LSTM


def graph_outputs(cell: str) -> tuple[str, ...]:
    """The exported graph's outputs for ``cell``: the bundle contract's, less ``c_n`` unless the cell has a
    cell state (only the LSTM)."""
    return OUTPUTS if cell_of(cell).has_cell_state else tuple(name for name in OUTPUTS if name != "c_n")


def _rename_lstm_keys(state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    for key in [key for key in state_dict if key.startswith(prefix + "lstm.")]:
        state_dict[prefix + "recurrent." + key[len(prefix) + 5 :]] = state_dict.pop(key)


def _valid_steps(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """(batch, seq) bool: True at real tokens."""
    return torch.arange(seq_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def _reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``length`` steps of ``x`` (batch, seq, features); padded steps stay put.
    Its own inverse."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, seq)
    source = lengths.unsqueeze(1) - 1 - steps  # (batch, seq)
    source = torch.where(source >= 0, source, steps)
    return x.gather(1, source.unsqueeze(2).expand(-1, -1, x.shape[2]))
