"""Training tests run tiny models: one torch thread is faster than two on a shared 2-core machine."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)
