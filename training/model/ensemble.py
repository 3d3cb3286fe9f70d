"""Several trained models of one recipe (one per seed) as one model whose probabilities are the mean of
theirs, exported as one ONNX graph and served like any bundle.

``logits`` is the log of the mean probability, so the service's softmax (sigmoid for multi-label) of it
gives back that mean exactly: ``log(mean_k softmax(z_k)) = logsumexp_k(log_softmax(z_k)) - log K``; for
multi-label ``logit(mean_k sigmoid(z_k))``, the mean kept within [1e-7, 1 - 1e-7] so that it stays finite.
``hidden_states``, ``h_n``, ``c_n`` and ``embedding_matrix`` are the first member's: an ensemble has no one
hidden state, so ``/hidden-states`` and ``/embed`` answer for member 1 (the manifest's ``ensemble`` says so),
while ``/classify`` and ``/explain`` (occlusion on the served scores) see the whole ensemble.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from training.model.classifier import RecurrentClassifier, graph_outputs

EDGE = 1e-7


class SeedEnsemble(nn.Module):
    def __init__(self, members: Sequence[RecurrentClassifier], multi_label: bool = False) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 models, got {len(members)}")
        if len({str(member.config.to_dict()) for member in members}) != 1:
            raise ValueError("ensemble members must share one architecture (the same recipe, other seeds)")
        self.members = nn.ModuleList(members)
        self.multi_label = multi_label
        self.config = members[0].config
        self.cell = members[0].cell

    @property
    def output_names(self) -> tuple[str, ...]:
        return graph_outputs(self.config.cell)

    @property
    def recurrent_nodes(self) -> int:
        """Native recurrent nodes in the exported graph: every member's layers."""
        return len(self.members) * self.config.num_layers

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = [member(ids, lengths) for member in self.members]
        stacked = torch.stack([output[0] for output in outputs])  # (members, batch, labels)
        if self.multi_label:
            mean = torch.sigmoid(stacked).mean(dim=0).clamp(EDGE, 1 - EDGE)
            logits = torch.log(mean) - torch.log1p(-mean)
        else:
            logits = torch.logsumexp(torch.log_softmax(stacked, dim=2), dim=0) - math.log(len(self.members))
        return (logits, *outputs[0][1:])
