"""Embedding → LSTM → pooling → dropout → Linear, the text classifier behind every bundle.

The forward pass returns everything the ONNX graph exposes (see ``service/bundle/graph.py``), so the
exported graph and the torch model can never disagree about what they compute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

POOLINGS = ("max", "mean", "last")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Plain, JSON-able description of the architecture (stored in checkpoints and manifests).

    ``vocab_size`` and ``num_labels`` come from the data: a config given to training leaves them 0 and
    training fills them in with :meth:`sized` once the vocabulary and the labels are known."""

    vocab_size: int = 0
    num_labels: int = 0
    embedding_dim: int = 128
    hidden_dim: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.3
    embedding_dropout: float = 0.1

    def __post_init__(self) -> None:
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
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


class LSTMClassifier(nn.Module):
    """A (stacked, optionally bidirectional) LSTM over token embeddings with masked pooling over time.

    ``embedding_dim`` and ``hidden_dim`` are independent: layer 1 reads ``embedding_dim`` inputs, every
    later layer reads ``hidden_dim × directions``; ``nn.LSTM`` handles the stack in one module.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size < 1 or config.num_labels < 1:
            raise ValueError("the model needs vocab_size and num_labels >= 1 (ModelConfig.sized sets them)")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.lstm = nn.LSTM(
            input_size=config.embedding_dim,
            hidden_size=config.hidden_dim,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            batch_first=True,
            # nn.LSTM applies this between stacked layers only (a warning, and nothing else, for 1 layer)
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_dim * config.directions, config.num_labels)

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``ids`` (batch, seq) int64, padded with 0 after ``lengths`` (batch,) int64, every length >= 1.

        Returns ``logits`` (batch, labels), ``hidden_states`` (batch, seq, hidden × dirs) zero at padding,
        ``h_n`` / ``c_n`` (layers × dirs, batch, hidden) and the embedding matrix (vocab, embedding_dim).
        """
        seq_len = ids.shape[1]
        embedded = self.embedding_dropout(self.embedding(ids))  # (batch, seq, embedding_dim)
        # Packing, not masking: the backward direction must start at each text's own last token, and
        # h_n/c_n must be taken there too. The ONNX exporter turns this into the LSTM's sequence_lens.
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, (h_n, c_n) = self.lstm(packed)  # h_n, c_n: (layers × dirs, batch, hidden)
        hidden_states, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=seq_len)
        # hidden_states: (batch, seq, hidden × dirs), exactly 0 after each length
        # the top layer's final state of each direction: forward at the last token, backward at the first
        top = h_n[-self.config.directions :]  # (dirs, batch, hidden)
        final = top.transpose(0, 1).reshape(ids.shape[0], -1)  # (batch, hidden × dirs)
        pooled = self._pool(hidden_states, final, lengths)  # (batch, hidden × dirs)
        logits = self.classifier(self.dropout(pooled))  # (batch, labels)
        return logits, hidden_states, h_n, c_n, self.embedding.weight

    def forward_train(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (batch, labels) by the same math as :meth:`forward`, for training only.

        PyTorch's CPU backward through a PackedSequence LSTM is quadratic in the sequence length (every
        time step's slice back-propagates into a zero-filled copy of the whole input): 60 s for one
        64 × 600 BBC batch here, against 2 s for the fused kernel on a padded tensor. So training runs each
        direction of each layer on the padded tensor, the backward direction on every text reversed
        *within its own length*: padding comes after the last real step in both directions and never
        reaches a real one. Export and evaluation keep :meth:`forward` (packed → ONNX ``sequence_lens``);
        a test checks that both give the same logits.
        """
        config = self.config
        layer_input = self.embedding_dropout(self.embedding(ids))  # (batch, seq, embedding_dim)
        zeros = layer_input.new_zeros(1, ids.shape[0], config.hidden_dim)  # (1, batch, hidden)
        last_step = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, config.hidden_dim)
        for layer in range(config.num_layers):
            outputs, finals = [], []
            for direction in range(config.directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                weights = [
                    getattr(self.lstm, f"{name}{suffix}")
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                ]
                source = _reverse_within_length(layer_input, lengths) if direction else layer_input
                # torch.lstm is the op nn.LSTM itself calls: (input, hx, weights, has_biases, num_layers,
                # dropout, train, bidirectional, batch_first)
                output = torch.lstm(
                    source, (zeros, zeros), weights, True, 1, 0.0, self.training, False, True
                )[0]
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
