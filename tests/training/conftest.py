"""Training tests run tiny models: one torch thread is faster than two on a shared 2-core machine."""

from __future__ import annotations

import pytest

# Every test here trains or exports with torch: without the train extra (a serving-only install) the whole
# folder is skipped with this reason instead of failing to import.
pytest.importorskip("torch", reason="needs torch (the train extra: pip install -e '.[train]')")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)
