"""Shadow runs: a sampled copy of a model's answered requests classified by its shadow version, in the
background, after the caller has its answer.

The copy goes into a bounded queue of its own (``LSTM_SERVICE_SHADOW_QUEUE`` requests); one task works it.
Shadow work is shed first: while the primary traffic has texts waiting for a batch, the task waits, and a
copy older than :data:`MAX_AGE_SECONDS` (or one that finds the queue full) is dropped and counted, so the
shadow takes only the capacity the primary leaves idle. The shadow's answers go to the prediction log
beside the primary's (request id ``<id>/shadow``, alias ``shadow``), and each copy counts as agreed or
disagreed with the primary's label(s).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from prometheus_client import Counter

from service.engine.results import id_lists
from service.errors import ServiceError

if TYPE_CHECKING:
    from service.engine.inference import Inference
    from service.engine.registry import Registry
    from service.engine.runtime import ModelRuntime
    from service.predictions.log import PredictionLog
    from service.rollout.routing import Router

logger = logging.getLogger(__name__)

MAX_AGE_SECONDS = 2.0
IDLE_POLL_SECONDS = 0.005

SHADOW = Counter(
    "lstm_service_shadow_requests",
    "Copies of answered requests sent to a shadow version, by outcome: agreed or disagreed (with the "
    "primary's label(s) on every text), shed (the primary was busy or the queue full), failed.",
    ("model", "version", "outcome"),
)


@dataclass(frozen=True, slots=True)
class _Copy:
    name: str
    version: int
    texts: list[str]
    primary: list[tuple[str, ...]]  # the primary's label(s) per text
    request_id: str
    route: str
    queued: float  # time.monotonic()


def _answers(runtime: ModelRuntime, scores: np.ndarray) -> list[tuple[str, ...]]:
    labels = runtime.labels
    if runtime.multi_label:
        return [tuple(labels[i] for i in decided) for decided in runtime.decide(scores)]
    return [(labels[i],) for i in np.argmax(scores, axis=1).tolist()]


class ShadowRunner:
    def __init__(
        self,
        registry: Registry,
        router: Router,
        inference: Inference,
        predictions: PredictionLog | None,
        max_queued: int,
    ) -> None:
        self.registry = registry
        self.router = router
        self.inference = inference
        self.predictions = predictions
        self._queue: asyncio.Queue[_Copy] = asyncio.Queue(maxsize=max_queued)
        self._task: asyncio.Task[None] | None = None

    def offer(
        self, runtime: ModelRuntime, texts: list[str], scores: np.ndarray, request_id: str, route: str | None
    ) -> None:
        """After an answer: queue a copy for the model's shadow, if it has one and the sample says so."""
        table = self.router.table(runtime.name)
        if table is None or table.shadow is None or table.shadow.version == runtime.version:
            return
        shadow = table.shadow
        if shadow.percent < 100 and random.random() * 100 >= shadow.percent:
            return
        copy = _Copy(
            runtime.name, shadow.version, texts, _answers(runtime, scores), request_id, route or "-",
            time.monotonic(),
        )  # fmt: skip
        try:
            self._queue.put_nowait(copy)
        except asyncio.QueueFull:
            SHADOW.labels(runtime.name, str(shadow.version), "shed").inc()
            return
        if self._task is None:  # a context of its own: not the request's record, deadline or trace
            self._task = contextvars.Context().run(asyncio.get_running_loop().create_task, self._run())

    async def _run(self) -> None:
        while True:
            copy = await self._queue.get()
            while self.inference.queued() > 0 and time.monotonic() - copy.queued < MAX_AGE_SECONDS:
                await asyncio.sleep(IDLE_POLL_SECONDS)  # the primary first
            if time.monotonic() - copy.queued >= MAX_AGE_SECONDS:
                SHADOW.labels(copy.name, str(copy.version), "shed").inc()
                continue
            try:
                await self._classify(copy)
            except ServiceError as error:  # unloaded meanwhile, a deadline, a failed batch
                SHADOW.labels(copy.name, str(copy.version), "failed").inc()
                logger.debug("shadow run of %s version %d failed: %s", copy.name, copy.version, error.message)
            except Exception:
                SHADOW.labels(copy.name, str(copy.version), "failed").inc()
                logger.exception("shadow run of %s version %d failed", copy.name, copy.version)

    async def _classify(self, copy: _Copy) -> None:
        runtime = self.registry.get(copy.name, copy.version)
        started = time.perf_counter()
        locations = [f"texts[{index}]" for index in range(len(copy.texts))]
        encodings = await self.inference.encode(runtime, copy.texts, locations, True, True, spans=False)
        _, scores = await self.inference.scored(runtime, id_lists(encodings))
        seconds = time.perf_counter() - started
        agreed = all(set(a) == set(b) for a, b in zip(_answers(runtime, scores), copy.primary, strict=True))
        SHADOW.labels(copy.name, str(copy.version), "agreed" if agreed else "disagreed").inc()
        if self.predictions is not None:
            self.predictions.note(
                runtime, copy.texts, scores, seconds,
                request_id=f"{copy.request_id}/shadow", route=copy.route, alias="shadow",
            )  # fmt: skip

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
