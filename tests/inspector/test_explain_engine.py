"""The explanation engine's parts: how sequences are cut into batch-sized chunks, the trajectory's decision
point and flips, and the gate that bounds the explanations running at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from service.engine.explain import (
    ExplanationGate,
    chunks,
    occlusion_sequences,
    prefix_sequences,
    trajectory_of,
)
from service.engine.loading import open_model
from service.errors import Overloaded
from service.tokenizer import UNK_ID

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "store" / "tiny-en" / "1"


def test_occlusion_replaces_each_known_token_once_and_skips_unknown_ones() -> None:
    assert occlusion_sequences([5, UNK_ID, 7]) == [[UNK_ID, UNK_ID, 7], [5, UNK_ID, UNK_ID]]
    assert prefix_sequences([5, 6, 7]) == [[5], [5, 6], [5, 6, 7]]


@pytest.mark.parametrize(("max_tokens", "max_items"), [(16, 32), (2048, 3), (7, 2), (1, 32)])
def test_chunks_keep_the_order_and_stay_within_the_limits(max_tokens: int, max_items: int) -> None:
    sequences = prefix_sequences(list(range(2, 30)))
    groups = chunks(sequences, max_tokens, max_items)

    assert [sequence for group in groups for sequence in group] == sequences
    for group in groups:
        assert len(group) <= max_items
        # a single sequence longer than the budget still runs, alone (the batcher does the same)
        assert len(group) == 1 or len(group) * max(map(len, group)) <= max_tokens


def test_the_decision_point_is_the_last_flip() -> None:
    runtime = open_model(FIXTURE)  # single-label, 3 labels
    rows = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    path = trajectory_of(runtime, rows)

    assert [(flip.index, flip.before, flip.after) for flip in path.flips] == [
        (1, (0,), (1,)),
        (2, (1,), (0,)),
        (3, (0,), (1,)),
    ]
    assert path.decision_point == 3
    assert trajectory_of(runtime, rows[3:]).decision_point == 0  # never flips: decided at the first token


@pytest.mark.anyio
async def test_the_gate_lets_two_run_some_wait_and_refuses_the_rest() -> None:
    gate = ExplanationGate(active=2, waiting=1)
    release = asyncio.Event()
    entered: list[int] = []

    async def explain(number: int) -> None:
        async with gate:
            entered.append(number)
            await release.wait()

    running = [asyncio.create_task(explain(number)) for number in range(3)]
    await asyncio.sleep(0.01)
    assert entered == [0, 1]  # the third waits
    with pytest.raises(Overloaded):  # at once: a gate that queued the fourth would fail here, not hang
        await asyncio.wait_for(gate.__aenter__(), 1.0)
    release.set()
    await asyncio.gather(*running)
    assert entered == [0, 1, 2]
