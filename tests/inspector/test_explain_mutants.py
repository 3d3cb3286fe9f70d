"""The explanation engine compared with the model's own scores: attributions are the whole text's score
minus the score with one token occluded, the trajectory is the score of each prefix, chunks are exactly
as full as the limits allow, and every refusal is compared whole (real bundles, no mock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from support.stores import SHAPES, STORE

from service.engine.batching import BatchLimits
from service.engine.explain import Explainer, ExplanationGate, chunks, trajectory_of
from service.engine.inference import Inference
from service.engine.loading import open_model
from service.engine.runtime import ModelRuntime
from service.errors import InvalidRequest, NotFound, Overloaded
from service.tokenizer import UNK_ID

pytestmark = pytest.mark.anyio
IDS = (5, UNK_ID, 7, 9, 12)


@pytest.fixture(scope="module")
def runtime() -> ModelRuntime:
    return open_model(Path(STORE) / "tiny-en" / "1")  # single-label: food, sport, tech


@pytest.fixture
async def inference() -> AsyncIterator[Inference]:
    inference = Inference(1, BatchLimits())
    yield inference
    await inference.aclose()


async def _refused(gate: ExplanationGate) -> Overloaded:
    """The gate's refusal, which comes at once: a gate that queues the caller instead fails the test."""
    try:
        with pytest.raises(Overloaded) as refused:
            await asyncio.wait_for(gate.__aenter__(), 1.0)
    except TimeoutError:
        pytest.fail("the gate queued an explanation past its waiting limit instead of refusing it")
    return refused.value


def _lengths(groups: list[list[list[int]]]) -> list[list[int]]:
    return [[len(sequence) for sequence in group] for group in groups]


def test_chunks_are_as_full_as_the_limits_allow() -> None:
    sequences = [list(range(length)) for length in range(1, 9)]

    assert _lengths(chunks(sequences, 8, 32)) == [[1, 2], [3, 4], [5], [6], [7], [8]]  # 2 x 4 = 8 fits
    assert _lengths(chunks(sequences, 100, 3)) == [[1, 2, 3], [4, 5, 6], [7, 8]]
    assert _lengths(chunks(sequences, 1, 32)) == [[1], [2], [3], [4], [5], [6], [7], [8]]
    # The longest sequence so far sets the padded width, also when a shorter one follows it.
    assert _lengths(chunks([[1] * 5, [1], [1], [1] * 2], 10, 32)) == [[5, 1], [1, 2]]
    assert chunks([], 8, 32) == []


async def test_attributions_are_the_base_score_minus_each_occluded_score(
    runtime: ModelRuntime, inference: Inference
) -> None:
    explainer = Explainer(inference, 2048, 32)

    explanation = await explainer.explain(runtime, list(IDS))

    occluded = [[*IDS[:index], UNK_ID, *IDS[index + 1 :]] for index in (0, 2, 3, 4)]
    scores = await inference.classify(runtime, [list(IDS), *occluded])
    base = scores[0]
    best = int(np.argmax(base))
    assert explanation.ids == IDS and explanation.explained == (best,)
    np.testing.assert_allclose(explanation.base, base, rtol=1e-6)
    expected = np.zeros((len(IDS), 1))
    for row, index in enumerate((0, 2, 3, 4)):
        expected[index, 0] = base[best] - scores[1 + row][best]
    np.testing.assert_allclose(explanation.attributions, expected, rtol=1e-5, atol=1e-7)
    assert explanation.attributions[1, 0] == 0.0  # <unk> is not occluded again
    assert explanation.trajectory is None


async def test_a_named_label_and_the_trajectory_are_the_models_scores(
    runtime: ModelRuntime, inference: Inference
) -> None:
    explainer = Explainer(inference, 6, 2)  # small chunks: the answer is the same

    explanation = await explainer.explain(runtime, IDS, label="sport", trajectory=True)

    prefixes = [list(IDS[:stop]) for stop in range(1, len(IDS) + 1)]
    scores = await inference.classify(runtime, prefixes)
    assert explanation.explained == (runtime.labels.index("sport"),) == (1,)
    assert explanation.attributions.shape == (len(IDS), 1)
    assert explanation.trajectory is not None
    np.testing.assert_allclose(explanation.trajectory.scores, scores, rtol=1e-5, atol=1e-7)
    expected = trajectory_of(runtime, scores)
    assert explanation.trajectory.flips == expected.flips
    assert explanation.trajectory.decision_point == expected.decision_point


async def test_refusals_are_compared_whole(runtime: ModelRuntime, inference: Inference) -> None:
    explainer = Explainer(inference, 2048, 32)

    with pytest.raises(InvalidRequest) as empty:
        await explainer.explain(runtime, [])
    assert empty.value.message == "text: no tokens (the text is empty or only whitespace)"
    with pytest.raises(NotFound) as unknown:
        await explainer.explain(runtime, IDS, label="x" * 100)
    assert unknown.value.message == (
        f"label {'x' * 80!r} is not a label of model tiny-en (food, sport, tech)"
    )


def test_a_multi_label_decision_is_a_set_in_the_trajectory() -> None:
    runtime = open_model(Path(SHAPES) / "tiny-tags" / "1")
    thresholds = runtime.manifest.thresholds
    assert runtime.multi_label and thresholds is not None
    above = {label: threshold + 0.01 for label, threshold in thresholds.items()}
    first, second = runtime.labels[0], runtime.labels[1]
    rows = np.zeros((3, len(runtime.labels)))
    rows[0, [0, 1]] = [above[first] + 0.05, above[second]]  # both labels, the first one best
    rows[1, [0, 1]] = [above[first], above[second] + 0.05]  # both labels, the second one best
    rows[2, 1] = above[second]  # the second only

    path = trajectory_of(runtime, rows)

    assert [(flip.index, flip.before, flip.after) for flip in path.flips] == [(2, (0, 1), (1,))]
    assert path.decision_point == 2


async def test_the_default_gate_runs_two_queues_eight_and_refuses_the_next(inference: Inference) -> None:
    gate = Explainer(inference, 2048, 32).gate
    release = asyncio.Event()
    entered: list[int] = []

    async def explain(number: int) -> None:
        async with gate:
            entered.append(number)
            await release.wait()

    running = [asyncio.create_task(explain(number)) for number in range(10)]
    await asyncio.sleep(0.01)
    assert entered == [0, 1]
    refused = await _refused(gate)
    assert refused.message == "too many explanations are running (8 waiting); retry in 1 s"
    assert refused.headers == {"Retry-After": "1"}
    release.set()
    await asyncio.gather(*running)
    assert entered == list(range(10))


async def test_a_waiter_that_got_in_no_longer_counts_as_waiting() -> None:
    gate = ExplanationGate(active=1, waiting=1)
    release = asyncio.Event()

    async def explain() -> None:
        async with gate:
            await release.wait()

    first = asyncio.create_task(explain())
    second = asyncio.create_task(explain())  # waits
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(first, second)
    release.clear()
    third = asyncio.create_task(explain())
    fourth = asyncio.create_task(explain())  # may wait: nobody else does
    await asyncio.sleep(0.01)
    await _refused(gate)
    release.set()
    await asyncio.gather(third, fourth)
    async with gate:  # free again: entered at once
        pass


async def test_an_explanation_hands_the_model_at_most_max_batch_size_sequences_a_call(
    runtime: ModelRuntime,
) -> None:
    sizes: list[int] = []
    limits = BatchLimits(max_batch_size=32, max_padding=10.0, max_wait_ms=0)
    inference = Inference(1, limits, on_batch=lambda _, stats: sizes.append(stats.size))
    try:
        explainer = Explainer(inference, 2048, 2)
        explanation = await explainer.explain(runtime, IDS, trajectory=True)
    finally:
        await inference.aclose()

    # the text and its 4 occlusions, then its 5 prefixes, each 2 at a time: a batch of 32 would take them all
    assert sizes == [2, 2, 1, 2, 2, 1]
    assert explanation.attributions.shape == (len(IDS), 1)
    assert explanation.trajectory is not None and explanation.trajectory.scores.shape == (len(IDS), 3)
