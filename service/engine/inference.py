"""Where requests meet the model: CPU work runs off the event loop, within the request's deadline.

The engine's verbs (:mod:`service.engine.engine`) never call a runtime directly; they await
:class:`Inference`. Classification goes through one
dynamic micro-batcher per model version (:mod:`service.engine.batching`): texts of concurrent requests share
one onnxruntime call. Everything else (hidden states, neighbours, long tokenizations) runs in a bounded
thread pool (``inference_threads``); onnxruntime releases the GIL, so the event loop keeps answering.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from service.engine import batching
from service.engine.preprocess import encode_texts
from service.engine.runtime import HiddenStates, ModelRuntime, Stop
from service.errors import INTERNAL_MESSAGE, DeadlineExceeded, Overloaded, ServiceError, Unavailable
from service.observability import timing, tracing
from service.observability.context import DEADLINE, RECORD, current_trace, seconds_left
from service.tokenizer import Encoding

T = TypeVar("T")

# Tokenizing a few short texts costs less than a hop to a thread and back; beyond this, leave the loop.
_INLINE_TOKENIZE_CHARS = 2_000


class Inference:
    """``batch_limits=None`` runs every classification request as its own model call.

    ``inline=True`` runs every call on the caller's thread instead of the pool: for a caller that makes
    one call at a time and has no event loop to keep free (the corpus scorer), the hop to a thread and
    back cost a tenth of its CPU per text. Deadlines are checked before a call, not during it. Such a
    caller serves no ``/metrics`` either: the per-text tokenizer histograms are not recorded.

    ``on_batch(runtime, stats)`` hears about every batch a micro-batcher ran (metrics); ``serves(runtime)``
    says whether a runtime is still loaded (batchers of unloaded or replaced runtimes are retired).
    """

    def __init__(
        self,
        threads: int,
        batch_limits: batching.BatchLimits | None = None,
        *,
        on_batch: Callable[[ModelRuntime, batching.BatchStats], None] | None = None,
        serves: Callable[[ModelRuntime], bool] | None = None,
        inline: bool = False,
    ) -> None:
        self.inline = inline
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="inference")
        self._batch_limits = batch_limits
        self._on_batch = on_batch
        # (name, version) -> the runtime a batcher was made for, and the batcher. A reload that brings a
        # new runtime for the same key gets a new batcher; the old one drains in the background.
        self._batchers: dict[tuple[str, int], tuple[ModelRuntime, batching.MicroBatcher]] = {}
        self._retired: set[asyncio.Task[None]] = set()
        # Is a runtime still loaded? Batchers of runtimes a reload replaced or an unload removed are
        # stopped (after draining), so their sessions and threads do not outlive them.
        self._serves = serves

    async def run(
        self,
        function: Callable[..., T],
        *args: object,
        stop: Stop | None = None,
        stopped: Callable[[], None] | None = None,
        **kwargs: object,
    ) -> T:
        """``function(*args, **kwargs)`` in the pool; 504 if the request's deadline passes first.

        At the deadline, ``stop`` is requested (the work ends at its next check, or onnxruntime ends its
        run) and ``stopped`` is called once the pool thread has really let go of the work: what the work
        holds (a reservation of the vector budget) is freed then, not at the 504."""
        remaining = seconds_left()
        if remaining is not None and remaining <= 0:
            if stopped is not None:
                stopped()
            raise DeadlineExceeded("the request ran out of time before inference started")
        call = timing.timed(functools.partial(function, *args, **kwargs))  # X-Queue-Time, X-Inference-Time
        if self.inline:  # nothing to stop: the call ends before the caller goes on
            return call()
        future = asyncio.get_running_loop().run_in_executor(self._executor, call)
        try:
            return await asyncio.wait_for(asyncio.shield(future), remaining)
        except (asyncio.TimeoutError, asyncio.CancelledError) as error:  # the deadline, or the client left
            if stop is not None:
                stop.request()
            if stopped is not None:
                future.add_done_callback(lambda _: stopped())
            future.add_done_callback(_consume)
            if isinstance(error, asyncio.CancelledError):
                raise
            raise DeadlineExceeded("the request did not finish within its deadline") from None

    async def encode(
        self,
        runtime: ModelRuntime,
        texts: Sequence[str],
        locations: Sequence[str],
        truncate: bool,
        require_tokens: bool,
        spans: bool = True,
    ) -> list[Encoding]:
        """Tokenize (inline when the texts are short, else in the pool); see :func:`encode_texts`."""
        trace = current_trace()
        started = time.time_ns() if trace is not None else 0
        if self.inline or sum(map(len, texts)) <= _INLINE_TOKENIZE_CHARS:
            encodings = encode_texts(
                runtime, texts, locations, truncate, require_tokens, spans, observe=not self.inline
            )
        else:
            encodings = await self.run(
                encode_texts, runtime, texts, locations, truncate, require_tokens, spans
            )
        if trace is not None:
            tokens = sum(len(encoding.ids) for encoding in encodings)
            attributes = {"lstm_service.texts": len(texts), "lstm_service.tokens": tokens}
            trace.child("tokenize", started, time.time_ns(), attributes)
        return encodings

    async def classify(self, runtime: ModelRuntime, id_lists: Sequence[Sequence[int]]) -> np.ndarray:
        """(texts, labels) scores: :meth:`ModelRuntime.scores` of :meth:`logits` (softmax probabilities,
        or one sigmoid per label for a multi-label model)."""
        return (await self.scored(runtime, id_lists))[1]

    async def scored(
        self, runtime: ModelRuntime, id_lists: Sequence[Sequence[int]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(texts, labels) logits and their scores, both computed with the model call: per batch, on the
        model's thread (a softmax per request on the event loop cost 6 % of its time at C=64)."""
        trace = current_trace()
        started = time.time_ns() if trace is not None else 0
        if not runtime.batch_invariant:
            # Dynamically quantized graphs scale activations per batch: each text must run alone to get
            # the scores it gets alone (and that its golden examples were verified with).
            scored = await self.run(_scored_one_by_one, runtime, id_lists)
            _note_inference(trace, started, len(id_lists))
            return scored
        batcher = self._batcher(runtime)
        if batcher is None:
            scored = await self.run(_scored, runtime, id_lists)
            _note_inference(trace, started, len(id_lists))
            return scored
        try:
            with timing.waiting_for_model():
                rows = await batcher.submit(id_lists, deadline=DEADLINE.get(), model_time=RECORD.get())
        except batching.BatcherError as error:
            raise service_error(error) from None
        if trace is not None:
            _note_queue(trace, started)
        if len(rows) == 1:
            logits, scores = rows[0]
            return logits[None], scores[None]
        return np.stack([row[0] for row in rows]), np.stack([row[1] for row in rows])

    def queued(self) -> int:
        """Texts waiting in every batcher (for a gauge)."""
        return sum(batcher.queued for _, batcher in self._batchers.values())

    def queued_by_model(self) -> dict[str, int]:
        """Texts waiting in each model's batchers (every version of it), for a gauge."""
        by_model: dict[str, int] = {}
        for (name, _), (_, batcher) in list(self._batchers.items()):
            by_model[name] = by_model.get(name, 0) + batcher.queued
        return by_model

    def _batcher(self, runtime: ModelRuntime) -> batching.MicroBatcher | None:
        if self._batch_limits is None:
            return None
        self._retire_unserved()  # a few dict lookups per request
        if self._serves is not None and not self._serves(runtime):
            return None  # a request that started just before a reload: run it alone on its old version
        key = (runtime.name, runtime.version)
        current = self._batchers.get(key)
        if current is not None and current[0] is runtime:
            return current[1]
        on_batch = self._on_batch
        batcher = batching.MicroBatcher(
            functools.partial(_scored_rows, runtime),
            self._batch_limits,
            on_batch=None if on_batch is None else functools.partial(on_batch, runtime),
            name=f"batcher-{runtime.name}-{runtime.version}",
        )
        batcher.start()
        if current is not None:  # the same version reloaded: let the old batcher finish what it holds
            self._retire(current[1])
        self._batchers[key] = (runtime, batcher)
        return batcher

    def _retire_unserved(self) -> None:
        if self._serves is None:
            return
        for key, (runtime, batcher) in list(self._batchers.items()):
            if not self._serves(runtime):
                del self._batchers[key]
                self._retire(batcher)

    def _retire(self, batcher: batching.MicroBatcher) -> None:
        task = asyncio.get_running_loop().create_task(batcher.stop(drain=True))
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def aclose(self, timeout: float | None = None) -> None:
        """Finish every queued classification, then stop the threads."""
        batchers = [batcher for _, batcher in self._batchers.values()]
        self._batchers.clear()
        await asyncio.gather(
            *(batcher.stop(drain=True, timeout=timeout) for batcher in batchers),
            *self._retired,
            return_exceptions=True,
        )
        self.close()

    async def hidden_states(
        self,
        runtime: ModelRuntime,
        id_lists: Sequence[Sequence[int]],
        stopped: Callable[[], None] | None = None,
    ) -> HiddenStates:
        stop = Stop()
        return await self.run(runtime.hidden_states, id_lists, stop, stop=stop, stopped=stopped)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def service_error(error: batching.BatcherError) -> ServiceError:
    """The one translation of the batcher's refusals and failures into the error vocabulary (429, 504,
    503, and 500 for a batch the model failed on: the batcher has logged its cause once already)."""
    if isinstance(error, batching.QueueFull):
        return Overloaded(
            f"the server is overloaded ({error.queued} texts queued); retry in {error.retry_after} s",
            headers={"Retry-After": str(error.retry_after)},
        )
    if isinstance(error, batching.Expired):
        return DeadlineExceeded("the request did not finish within its deadline")
    if isinstance(error, batching.BatcherStopped):
        return Unavailable("the server is shutting down; retry on another instance")
    if isinstance(error, batching.BatchFailed):
        return ServiceError(INTERNAL_MESSAGE)
    raise TypeError(f"no answer for {type(error).__name__}") from error


def _scored(runtime: ModelRuntime, id_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    logits = runtime.logits(id_lists)
    return logits, runtime.scores(logits)


def _scored_rows(runtime: ModelRuntime, id_lists: list[Sequence[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """A micro-batch's results: one (logits, scores) pair of rows per text."""
    logits, scores = _scored(runtime, id_lists)
    return list(zip(logits, scores, strict=True))


def _scored_one_by_one(
    runtime: ModelRuntime, id_lists: Sequence[Sequence[int]]
) -> tuple[np.ndarray, np.ndarray]:
    logits = np.concatenate([runtime.logits([ids]) for ids in id_lists])
    return logits, runtime.scores(logits)


def _note_inference(trace: tracing.RequestTrace | None, started: int, texts: int) -> None:
    """A model call run for this request alone: an ``inference`` span."""
    if trace is not None:
        trace.results_ns = time.time_ns()
        trace.child("inference", started, trace.results_ns, {"lstm_service.texts": texts})


def _note_queue(trace: tracing.RequestTrace, started: int) -> None:
    """The wait for the micro-batcher: a ``queue`` span from the hand-over to the first batch that ran a text
    of the request, linked to every such batch (each batch span links back to the request)."""
    trace.results_ns = time.time_ns()
    batches = [(reference, batch_start) for reference, batch_start in trace.batches if batch_start >= started]
    first = min((batch_start for _, batch_start in batches), default=trace.results_ns)
    attributes = {"lstm_service.batches": len(batches)}
    trace.child("queue", started, first, attributes, [reference for reference, _ in batches])


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of work whose request gave up on it (a stopped run raises), so that asyncio
    does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()
