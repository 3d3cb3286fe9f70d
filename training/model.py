"""Embedding → LSTM → pooling → dropout → Linear, the text classifier behind every bundle.

The forward pass returns everything the ONNX graph exposes (see ``service/bundle.py``), so the
exported graph and the torch model can never disagree about what they compute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

POOLINGS = ("max", "mean", "last")


@dataclass(frozen=True)
class ModelConfig:
    """Plain, JSON-able description of the architecture (stored in checkpoints and manifests)."""

    vocab_size: int
    num_labels: int
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
        for name in ("vocab_size", "num_labels", "embedding_dim", "hidden_dim", "num_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("dropout", "embedding_dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

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
        pooled = self._pool(hidden_states, h_n, lengths)  # (batch, hidden × dirs)
        logits = self.classifier(self.dropout(pooled))  # (batch, labels)
        return logits, hidden_states, h_n, c_n, self.embedding.weight

    def _pool(self, hidden_states: torch.Tensor, h_n: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.config.pooling == "last":
            # the top layer's final state of each direction: forward at the last token, backward at the first
            top = h_n[-self.config.directions :]  # (dirs, batch, hidden)
            return top.transpose(0, 1).reshape(h_n.shape[1], -1)
        steps = torch.arange(hidden_states.shape[1], device=hidden_states.device)
        valid = (steps.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)  # (batch, seq, 1)
        if self.config.pooling == "max":
            # padded steps are 0, which could win the max over negative activations: mask them out
            return hidden_states.masked_fill(~valid, float("-inf")).max(dim=1).values
        return hidden_states.sum(dim=1) / lengths.unsqueeze(1).to(hidden_states.dtype)
