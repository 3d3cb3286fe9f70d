"""Why a model chose a label, from forward passes only: occlusion attributions and prefix trajectories.

- **Occlusion**: the text's ids, then the same ids with token ``t`` replaced by ``<unk>`` for every ``t``
  (T + 1 sequences). A token's attribution for a label is ``p(label | text) - p(label | text with the token
  occluded)``: positive when the token pushes towards the label. Exact (no sampling). A token that is
  already ``<unk>`` has attribution 0 and is not run again.
- **Trajectory**: every prefix ``ids[:t]`` for ``t = 1..T`` run as its own sequence (a bidirectional model's
  backward direction would otherwise see the future), so each point is what the model says after reading
  ``t`` tokens.

Every sequence goes through :meth:`service.engine.inference.Inference.classify`, i.e. through the model's
micro-batcher: the same scores as ``/classify`` gives those ids, counted against ``max_batch_tokens`` and the
queue limit. An explanation hands the batcher one chunk at a time (at most ``max_batch_tokens`` padded
tokens), so classification requests queued meanwhile join the very next batch instead of waiting behind
hundreds of sequences, and :class:`ExplanationGate` bounds how many explanations run at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.engine.inference import Inference
from service.engine.runtime import ModelRuntime
from service.errors import InvalidRequest, NotFound, Overloaded
from service.tokenizer import UNK_ID


@dataclass(frozen=True)
class Flip:
    """After token ``index`` (0-based) the decision changed from ``before`` to ``after`` (label indices)."""

    index: int
    before: tuple[int, ...]
    after: tuple[int, ...]


@dataclass(frozen=True)
class Trajectory:
    scores: np.ndarray  # (T, labels): probabilities after each prefix ids[:t + 1]
    decision_point: int  # the token after which the decision no longer changes (0-based)
    flips: tuple[Flip, ...]


@dataclass(frozen=True)
class Explanation:
    ids: tuple[int, ...]  # the explained ids (the first max_tokens when truncated)
    base: np.ndarray  # (labels,): probabilities of the whole sequence
    explained: tuple[int, ...]  # label indices the attributions are for
    attributions: np.ndarray  # (T, len(explained)): base - occluded
    trajectory: Trajectory | None


def decision(runtime: ModelRuntime, scores: np.ndarray) -> tuple[int, ...]:
    """The predicted label indices of one row of scores: the best label, or (multi-label) every label whose
    score reaches its threshold, best first (possibly none)."""
    if runtime.multi_label:
        return tuple(runtime.decide(scores[None, :])[0])
    return (int(np.argmax(scores)),)


def occlusion_sequences(ids: Sequence[int]) -> list[list[int]]:
    """``ids`` with each known token in turn replaced by ``<unk>`` (unknown tokens are skipped)."""
    return [[*ids[:index], UNK_ID, *ids[index + 1 :]] for index, token in enumerate(ids) if token != UNK_ID]


def prefix_sequences(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[:stop]) for stop in range(1, len(ids) + 1)]


def chunks(sequences: Sequence[list[int]], max_tokens: int, max_items: int) -> list[list[list[int]]]:
    """Consecutive groups of at most ``max_items`` sequences and ``max_tokens`` padded tokens each."""
    groups: list[list[list[int]]] = []
    group: list[list[int]] = []
    longest = 0
    for sequence in sequences:
        widest = max(longest, len(sequence))
        if group and (len(group) == max_items or (len(group) + 1) * widest > max_tokens):
            groups.append(group)
            group, widest = [], len(sequence)
        group.append(sequence)
        longest = widest
    if group:
        groups.append(group)
    return groups


def trajectory_of(runtime: ModelRuntime, scores: np.ndarray) -> Trajectory:
    decisions = [tuple(sorted(decision(runtime, row))) for row in scores]  # a set of labels each
    flips = tuple(
        Flip(index, decisions[index - 1], decisions[index])
        for index in range(1, len(decisions))
        if decisions[index] != decisions[index - 1]
    )
    return Trajectory(scores, flips[-1].index if flips else 0, flips)


class ExplanationGate:
    """At most ``active`` explanations run at once; ``waiting`` more may wait; the rest get 429."""

    def __init__(self, active: int = 2, waiting: int = 8) -> None:
        self._semaphore = asyncio.Semaphore(active)
        self._waiting, self._max_waiting = 0, waiting

    async def __aenter__(self) -> None:
        if self._semaphore.locked() and self._waiting >= self._max_waiting:
            raise Overloaded(
                f"too many explanations are running ({self._max_waiting} waiting); retry in 1 s",
                headers={"Retry-After": "1"},
            )
        self._waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._waiting -= 1

    async def __aexit__(self, *exc_info: object) -> None:
        self._semaphore.release()


class Explainer:
    """Runs explanations for one service: sequences go to the model in chunks that fit one batch."""

    def __init__(self, inference: Inference, max_batch_tokens: int, max_batch_size: int) -> None:
        self.inference = inference
        self._max_tokens, self._max_items = max_batch_tokens, max_batch_size
        self.gate = ExplanationGate()

    async def _scores(self, runtime: ModelRuntime, sequences: Sequence[list[int]]) -> np.ndarray:
        rows = []
        for group in chunks(sequences, self._max_tokens, self._max_items):
            rows.append(await self.inference.classify(runtime, group))
        return np.concatenate(rows) if rows else np.empty((0, len(runtime.labels)))

    async def explain(
        self,
        runtime: ModelRuntime,
        ids: Sequence[int],
        label: str | None = None,
        trajectory: bool = False,
    ) -> Explanation:
        """Occlusion attributions of ``ids`` for ``label`` (default: the predicted label or labels)."""
        ids = tuple(ids)
        if not ids:
            raise InvalidRequest("text: no tokens (the text is empty or only whitespace)")
        labels = runtime.labels
        if label is not None and label not in labels:  # like an unknown version: 404
            raise NotFound(
                f"label {label[:80]!r} is not a label of model {runtime.name} ({', '.join(labels)})"
            )
        async with self.gate:
            occluded = occlusion_sequences(ids)
            scores = await self._scores(runtime, [list(ids), *occluded])
            prefixes = await self._scores(runtime, prefix_sequences(ids)) if trajectory else None
        base = scores[0]
        if label is not None:
            explained: tuple[int, ...] = (labels.index(label),)
        else:
            explained = decision(runtime, base) or (int(np.argmax(base)),)
        # Unknown tokens were not run: occluding them changes nothing.
        per_token = np.repeat(base[None, :], len(ids), axis=0)
        known = [index for index, token in enumerate(ids) if token != UNK_ID]
        per_token[known] = scores[1:]
        attributions = base[None, list(explained)] - per_token[:, list(explained)]
        path = trajectory_of(runtime, prefixes) if prefixes is not None else None
        return Explanation(ids, base, explained, attributions, path)
