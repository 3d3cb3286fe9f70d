"""An exponential moving average of the weights (Polyak averaging), scored on dev in place of the weights
themselves: the average of the last few hundred steps sits nearer the middle of the minimum the optimiser
is circling than any one step does, which steadies the dev curve from epoch to epoch.

Updated after every optimiser step with ``decay`` warmed up as ``min(decay, (1 + n) / (10 + n))`` after
``n`` updates (TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``), so the first epoch's
average is not dominated by the random initial weights. Only floating-point tensors are averaged; the
frozen embedding of ``--w2v-mode frozen`` stays what it is since it never changes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"the moving average's decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {
            key: value.detach().clone()
            for key, value in model.state_dict().items()
            if value.is_floating_point()
        }

    @classmethod
    def create(cls, model: nn.Module, decay: float) -> WeightAverage | None:
        """The average for ``decay`` > 0; ``None`` (no averaging) for 0."""
        return cls(model, decay) if decay > 0 else None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        state = model.state_dict()
        for key, average in self.shadow.items():
            average.mul_(decay).add_(state[key].detach(), alpha=1 - decay)

    def swap_in(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Load the averaged weights into ``model``; return its own weights, to load back afterwards."""
        own = {key: value.detach().clone() for key, value in model.state_dict().items()}
        model.load_state_dict({**own, **self.shadow})
        return own

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.shadow = {key: value.clone() for key, value in state["shadow"].items()}
