"""Per model version totals since the process started, in the shape of Triton's statistics extension
(``GET /v2/models/{name}/stats``): the engine records them, the protocol adapter reads them.

One :class:`Statistics` per engine. Batchers record their model calls from their own threads and the
verbs record answered requests from the event loop, so updates hold a lock; readers copy under it.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class ModelStatistics:
    """Totals: ``[count, nanoseconds]`` pairs, and batch size -> pair."""

    last_inference_ms: int = 0
    inference_count: int = 0  # texts the model computed
    execution_count: int = 0  # model calls (a batch of texts is one call)
    success: list[int] = field(default_factory=lambda: [0, 0])  # requests answered, per request
    fail: list[int] = field(default_factory=lambda: [0, 0])
    queue: list[int] = field(default_factory=lambda: [0, 0])  # per text: waiting for its model call
    compute_infer: list[int] = field(default_factory=lambda: [0, 0])  # per model call
    batches: dict[int, list[int]] = field(default_factory=dict)


class Statistics:
    def __init__(self) -> None:
        self._totals: dict[tuple[str, int], ModelStatistics] = {}
        self._lock = threading.Lock()

    def _of(self, model: str, version: int) -> ModelStatistics:
        found = self._totals.get((model, version))
        if found is None:
            found = self._totals.setdefault((model, version), ModelStatistics())
        return found

    def observe_execution(
        self, model: str, version: int, size: int, queue_seconds: Iterable[float], run_seconds: float
    ) -> None:
        """One successful model call over ``size`` texts (batched, or run alone by a verb)."""
        run_ns = int(run_seconds * 1e9)
        queue_ns = int(sum(queue_seconds) * 1e9)
        with self._lock:
            totals = self._of(model, version)
            totals.last_inference_ms = int(time.time() * 1000)
            totals.inference_count += size
            totals.execution_count += 1
            totals.queue[0] += size
            totals.queue[1] += queue_ns
            totals.compute_infer[0] += 1
            totals.compute_infer[1] += run_ns
            batch = totals.batches.setdefault(size, [0, 0])
            batch[0] += 1
            batch[1] += run_ns

    def observe_request(self, model: str, version: int, succeeded: bool, seconds: float) -> None:
        """One inference request for ``model`` answered (or refused after the model was chosen)."""
        with self._lock:
            totals = self._of(model, version)
            pair = totals.success if succeeded else totals.fail
            pair[0] += 1
            pair[1] += int(seconds * 1e9)

    def totals(self, model: str, version: int) -> ModelStatistics:
        """A copy of the totals of one version (zeros for a version nothing was recorded for)."""
        with self._lock:
            found = self._totals.get((model, version))
            return copy.deepcopy(found) if found is not None else ModelStatistics()
