"""The engine: the one place where a text becomes an answer.

:class:`Engine` owns the long-lived parts of a worker (the registry of loaded models, the inference pool
and its micro-batchers, the explainer, the vector budget, the per-model statistics), built at start-up
(:meth:`Engine.start`) and closed at shutdown (:meth:`Engine.aclose`). It offers whole verbs, each doing
check → choose the model → tokenize → queue → batch → score → record, so that every protocol (the native
routes, Open Inference Protocol v2, text-embeddings-inference) decodes its wire format, calls one verb and
encodes the result:

- :meth:`classify` texts → :class:`Classified` (logits and scores, one batched model call);
- :meth:`outputs` a chosen model's texts or token ids → :class:`ModelOutputs` (scores, labels, hidden states);
- :meth:`tokenize`, :meth:`embed`, :meth:`hidden_states`, :meth:`explain`.

Nothing here knows HTTP: errors are :class:`service.errors.ServiceError` subclasses, results plain data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from service.engine.batching import BatchLimits, BatchStats
from service.engine.budget import (
    Reservation,
    VectorBudget,
    embed_cost,
    hidden_states_cost,
    upper_bound_tokens,
)
from service.engine.explain import Explainer
from service.engine.inference import Inference
from service.engine.preprocess import check_texts, lookup_tokens
from service.engine.registry import NotLoaded, Registry
from service.engine.results import (
    DECIDED,
    HIDDEN,
    LABELS,
    LOGITS,
    SCORES,
    Classified,
    Embedded,
    EmbedToken,
    Explained,
    HiddenStated,
    ModelOutputs,
    TextQuery,
    Tokenized,
    id_lists,
)
from service.engine.runtime import HiddenStates, ModelRuntime, Neighbors, Stop
from service.engine.statistics import Statistics
from service.errors import DeadlineExceeded, InvalidRequest, ServiceError
from service.observability import load_metrics, metrics
from service.observability.context import (
    RECORD,
    REQUEST_ID,
    current_trace,
    note_model,
    routing_key,
    seconds_left,
)
from service.predictions.log import PredictionLog
from service.rollout.routing import Router
from service.rollout.shadow import ShadowRunner
from service.settings import Settings
from service.tokenizer import Encoding

if TYPE_CHECKING:
    from service.observability.tracing_export import Tracing

T = TypeVar("T")


class Engine:
    def __init__(self, settings: Settings, registry: Registry, *, inline: bool = False) -> None:
        self.settings = settings
        self.registry = registry
        self.statistics = Statistics()
        self.inference = Inference(
            settings.inference_threads,
            _batch_limits(settings),
            on_batch=self._on_batch,
            serves=registry.serves,
            inline=inline,  # every model call on the caller's thread (see Inference)
        )
        self.explainer = Explainer(self.inference, settings.max_batch_tokens, settings.max_batch_size)
        self.budget = VectorBudget(settings.max_vector_bytes, settings.max_vector_waiting)
        self.tracing: Tracing | None = None  # set by the app's lifespan when LSTM_SERVICE_TRACING is on
        # Answered classifications go to the prediction log (service.predictions), when one is set.
        self.predictions = PredictionLog.from_settings(settings)
        # Aliases, canary split and shadow runs, from each model's rollout file (service.rollout).
        self.router = Router(registry, settings.model_store, settings.rollout_poll_seconds)
        self.shadows = ShadowRunner(
            registry, self.router, self.inference, self.predictions, settings.shadow_queue
        )
        self._sampler: asyncio.Task[None] | None = None
        self._rollout_watch: asyncio.Task[None] | None = None
        self._loading: dict[str, asyncio.Future[ModelRuntime | None]] = {}  # evicted models being loaded

    @classmethod
    async def start(cls, settings: Settings) -> Engine:
        """Load and verify every model of the store (off the event loop), then build the rest."""
        registry = Registry(
            settings.model_store,
            settings.pinned,
            settings.default_model,
            settings.intra_op_threads,
            fallback=settings.fallback,
            public_key=settings.public_key(),
            max_loaded=settings.max_loaded_models,
        )
        await asyncio.to_thread(registry.load_all)  # opening sessions blocks; keep the loop free
        engine = cls(settings, registry)
        metrics.track_queue(engine.inference.queued)
        metrics.track_training_drift(registry)  # the training quantiles next to the served histograms
        sampler = load_metrics.LoadSampler(
            engine.inference.queued_by_model, engine.budget, lambda: registry.names
        )
        load_metrics.track_load(sampler)
        engine._sampler = asyncio.create_task(sampler.run())  # the load gauges, sampled every second
        await asyncio.to_thread(engine.router.refresh)  # the rollouts in force before the first request
        engine._rollout_watch = asyncio.create_task(engine.router.watch())
        return engine

    async def aclose(self) -> None:
        """Finish every queued classification (within a request's deadline), then stop the threads."""
        for task in (self._sampler, self._rollout_watch):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.shadows.aclose()
        await self.inference.aclose(timeout=self.settings.request_timeout_seconds)
        if self.predictions is not None:  # the answers given are written, within a request's deadline
            await asyncio.to_thread(self.predictions.close, self.settings.request_timeout_seconds)

    def _on_batch(self, runtime: ModelRuntime, stats: BatchStats) -> None:
        metrics.on_batch(runtime, stats)
        if self.tracing is not None:
            self.tracing.batch(runtime.name, runtime.version, stats)
        if not stats.failed:
            self.statistics.observe_execution(
                runtime.name, runtime.version, stats.size, stats.queue_seconds, stats.run_seconds
            )

    # -- choosing the model ----------------------------------------------------------------------------

    async def model(
        self,
        name: str | None = None,
        version: int | str | None = None,
        texts: Sequence[str] | None = None,
    ) -> ModelRuntime:
        """The version that answers a request for ``name`` (None: the default model), noted on the
        request's record; the registry's errors (unknown model or version, not ready) otherwise. A model
        evicted under the model budget is loaded first, within the request's deadline (504 past it).

        ``version``: a number, an alias of the model's rollout, or None: then the rollout's canary split
        chooses by the caller's routing key, else by ``texts`` (:mod:`service.rollout.routing`)."""
        alias = None
        if isinstance(version, str) or self.router.active:
            model_name = name if name is not None else self.registry.default_model
            key = routing_key()
            if key is None and texts is None:  # token ids (OIP): no text to key on; split per request
                key = REQUEST_ID.get()
            version, alias = self.router.choose(model_name, version, texts, key)
        try:
            runtime = self.registry.get(name, version)
        except NotLoaded:
            loaded = await self._load_evicted(name if name is not None else self.registry.default_model or "")
            if loaded is not None and version in (None, loaded.version):
                runtime = loaded  # even if another load evicted it again meanwhile: this request has it
            else:
                runtime = self.registry.get(name, version)  # the load failed: the registry says why
        note_model(runtime.name, runtime.version, alias)
        return runtime

    async def _load_evicted(self, name: str) -> ModelRuntime | None:
        """One load per model however many requests wait for it; each waits at most its deadline (the load
        goes on for the others)."""
        task = self._loading.get(name)
        if task is None or task.done():
            task = asyncio.ensure_future(asyncio.to_thread(self.registry.ensure_loaded, name))
            self._loading[name] = task
        left = seconds_left()
        try:
            return await asyncio.wait_for(asyncio.shield(task), None if left is None else max(left, 0.0))
        except asyncio.TimeoutError:
            raise DeadlineExceeded(f"model {name} was still loading at the request's deadline") from None

    async def _model_for(self, query: TextQuery, max_texts: int) -> ModelRuntime:
        check_texts(query.items, query.locations, max_texts, self.settings.max_text_chars)
        return await self.model(query.model, query.version, query.items)

    async def _encode(
        self, runtime: ModelRuntime, query: TextQuery, require_tokens: bool, spans: bool
    ) -> list[Encoding]:
        return await self.inference.encode(
            runtime, query.items, query.locations, query.truncate, require_tokens, spans
        )

    # -- verbs -------------------------------------------------------------------------------------------

    async def classify(self, query: TextQuery, *, abstain_below: float | None = None) -> Classified:
        """Score each text with every label of the model: one call through its micro-batcher."""
        runtime = await self._model_for(query, self.settings.max_texts)
        if abstain_below is not None and runtime.multi_label:
            raise InvalidRequest(
                f"abstain_below applies to single-label models; {runtime.name} is multi-label "
                "(each of its labels is decided by its own threshold, see GET /models/{name})"
            )
        started = time.perf_counter()
        try:
            encodings = await self._encode(runtime, query, require_tokens=True, spans=False)
            logits, scores = await self.inference.scored(runtime, id_lists(encodings))
        except ServiceError:
            self.statistics.observe_request(
                runtime.name, runtime.version, False, time.perf_counter() - started
            )
            raise
        seconds = time.perf_counter() - started
        self.statistics.observe_request(runtime.name, runtime.version, True, seconds)
        if self.predictions is not None:
            self.predictions.note(runtime, query.items, scores, seconds)
        if self.router.active:
            self.shadows.offer(runtime, query.items, scores, REQUEST_ID.get(), _route())
        return Classified(runtime, encodings, logits, scores)

    async def outputs(
        self,
        runtime: ModelRuntime,
        wanted: frozenset[str],
        *,
        texts: TextQuery | None = None,
        ids: Sequence[Sequence[int]] | None = None,
    ) -> ModelOutputs:
        """The ``wanted`` outputs (:data:`service.engine.results.OUTPUTS`) of ``runtime`` (chosen with
        :meth:`model`) for ``texts`` (tokenized as :meth:`classify` tokenizes them) or token ``ids``.

        Scores come from the same batched call as :meth:`classify`'s, so the same text gets the same
        numbers; hidden states run in the inference pool within the vector budget (429 past it, 413 if
        never), reserved until the result's ``release``."""
        started = time.perf_counter()
        try:
            if texts is not None:
                check_texts(
                    texts.items, texts.locations, self.settings.max_texts, self.settings.max_text_chars
                )
                ids = id_lists(await self._encode(runtime, texts, require_tokens=True, spans=False))
            if ids is None:
                raise TypeError("Engine.outputs needs texts or ids")
            result = await self._outputs(runtime, wanted, ids)
        except ServiceError:
            self.statistics.observe_request(
                runtime.name, runtime.version, False, time.perf_counter() - started
            )
            raise
        seconds = time.perf_counter() - started
        self.statistics.observe_request(runtime.name, runtime.version, True, seconds)
        if texts is not None and result.scores is not None:
            if self.predictions is not None:
                self.predictions.note(runtime, texts.items, result.scores, seconds)
            if self.router.active:
                self.shadows.offer(runtime, texts.items, result.scores, REQUEST_ID.get(), _route())
        return result

    async def _outputs(
        self, runtime: ModelRuntime, wanted: frozenset[str], ids: Sequence[Sequence[int]]
    ) -> ModelOutputs:
        logits = scores = labels = decided = None
        if wanted & {LOGITS, SCORES, LABELS, DECIDED}:
            logits, scores = await self.inference.scored(runtime, ids)
            labels = runtime.best_labels(scores) if LABELS in wanted else None
            decided = runtime.decide(scores) if DECIDED in wanted else None
        if HIDDEN not in wanted:
            return ModelOutputs(runtime, logits, scores, labels, decided)
        cost = hidden_states_cost(runtime, [len(row) for row in ids])
        reservation = await self.budget.reserve(cost, seconds_left())
        started = time.perf_counter()
        states = await self._within(reservation, self.inference.hidden_states, runtime, ids)
        seconds = time.perf_counter() - started
        self.statistics.observe_execution(runtime.name, runtime.version, len(ids), (), seconds)
        padded, h_n, c_n = _batch_first(states, ids)
        return ModelOutputs(runtime, logits, scores, labels, decided, padded, h_n, c_n, reservation.release)

    async def _within(
        self, reservation: Reservation, work: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """``work(*args, stopped=reservation.release)``: the reservation is given back if the work fails,
        and, when the deadline passes or the client leaves, once the pool thread has let go of it."""
        try:
            return await work(*args, stopped=reservation.release, **kwargs)
        except (DeadlineExceeded, asyncio.CancelledError):
            raise  # released by the work's ``stopped``, once the thread has stopped
        except BaseException:
            reservation.release()
            raise

    async def tokenize(self, query: TextQuery) -> Tokenized:
        """Each text's tokens as the model reads them (ids, offsets, truncation)."""
        runtime = await self._model_for(query, self.settings.max_texts)
        return Tokenized(runtime, await self._encode(runtime, query, require_tokens=False, spans=True))

    async def hidden_states(self, query: TextQuery) -> HiddenStated:
        """The recurrent layers' states for each text, within the vector budget (reserved from the texts'
        lengths before tokenizing, so a refusal costs nothing)."""
        runtime = await self._model_for(query, self.settings.max_vector_texts)
        bound = upper_bound_tokens(query.items, runtime.tokenizer.max_length)
        reservation = await self.budget.reserve(hidden_states_cost(runtime, bound), seconds_left())
        try:
            encodings = await self._encode(runtime, query, require_tokens=True, spans=True)
            reservation.shrink(hidden_states_cost(runtime, [len(e.ids) for e in encodings]))
        except BaseException:
            reservation.release()
            raise
        states = await self._within(reservation, self.inference.hidden_states, runtime, id_lists(encodings))
        return HiddenStated(runtime, encodings, states, reservation.release)

    async def embed(
        self, query: TextQuery, *, tokens: Sequence[str] | None = None, neighbors: int | None = None
    ) -> Embedded:
        """The embedding vectors of ``tokens`` (looked up as they are) or of each text's tokens, and the
        ``neighbors`` nearest vocabulary entries of each, within the vector budget; the lookup and the
        search run in the inference pool."""
        if tokens is not None:
            runtime = await self._model_for(query, self.settings.max_texts)
            reservation = await self.budget.reserve(
                embed_cost(runtime, len(tokens), neighbors), seconds_left()
            )
            token_ids = lookup_tokens(runtime, tokens)
            groups = [[EmbedToken(i, text, None, None) for i, text in zip(token_ids, tokens, strict=True)]]
            truncated = [False]
        else:
            runtime = await self._model_for(query, self.settings.max_vector_texts)
            bound = sum(upper_bound_tokens(query.items, runtime.tokenizer.max_length))
            reservation = await self.budget.reserve(embed_cost(runtime, bound, neighbors), seconds_left())
            try:
                encodings = await self._encode(runtime, query, require_tokens=False, spans=True)
            except BaseException:
                reservation.release()
                raise
            groups = [
                [
                    EmbedToken(i, span.text, span.start, span.stop)
                    for i, span in zip(e.ids, e.spans, strict=True)
                ]
                for e in encodings
            ]
            truncated = [encoding.truncated for encoding in encodings]
        all_ids = [token.id for group in groups for token in group]
        reservation.shrink(embed_cost(runtime, len(all_ids), neighbors))
        vectors, found = await self._within(reservation, self._vectors, runtime, all_ids, neighbors)
        return Embedded(runtime, groups, truncated, vectors, found, reservation.release)

    async def _vectors(
        self, runtime: ModelRuntime, token_ids: list[int], k: int | None, stopped: Callable[[], None]
    ) -> tuple[np.ndarray, Neighbors | None]:
        stop = Stop()
        return await self.inference.run(
            _vectors_and_neighbors, runtime, token_ids, k, stop, stop=stop, stopped=stopped
        )

    async def explain(
        self,
        query: TextQuery,
        *,
        label: str | None = None,
        trajectory: bool = False,
    ) -> Explained:
        """Occlusion attributions of one text's tokens for ``label`` (default: the model's decision),
        and optionally the prefix trajectory; at most ``max_explain_tokens`` tokens are explained."""
        runtime = await self._model_for(query, 1)
        text, location = query.items[0], query.locations[0]
        (encoding,) = await self.inference.encode(runtime, [text], [location], True, True)
        limit = min(self.settings.max_explain_tokens, runtime.tokenizer.max_length)
        total = encoding.num_tokens_before_truncation
        if total > limit and not query.truncate:
            raise InvalidRequest(
                f"{location}: {total} tokens, but /explain explains at most {limit} "
                f"(LSTM_SERVICE_MAX_EXPLAIN_TOKENS={self.settings.max_explain_tokens}, model max_length "
                f'{runtime.tokenizer.max_length}); send "truncate": true to explain the first tokens'
            )
        trace = current_trace()
        started = time.time_ns()
        explanation = await self.explainer.explain(runtime, encoding.ids[:limit], label, trajectory)
        if trace is not None:
            tokens = min(total, limit)
            trace.child("explain", started, time.time_ns(), {"lstm_service.tokens": tokens})
        return Explained(runtime, encoding, explanation, total)


def _route() -> str | None:
    record = RECORD.get()
    return None if record is None else record.route


def _batch_limits(settings: Settings) -> BatchLimits | None:
    """The micro-batchers' limits, from the settings; None when batching is off."""
    if not settings.batching:
        return None
    return BatchLimits(
        max_batch_size=settings.max_batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        max_wait_ms=settings.max_wait_ms,
        max_queued=settings.max_queued,
    )


def _batch_first(
    states: HiddenStates, ids: Sequence[Sequence[int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-text states zero-padded to the longest (as the graph pads), h_n and c_n batch first."""
    longest = max(len(row) for row in ids)
    features = states.per_text[0].shape[1]
    padded = np.zeros((len(ids), longest, features), dtype=np.float32)
    for row, text_states in enumerate(states.per_text):
        padded[row, : len(text_states)] = text_states
    h_n = np.ascontiguousarray(states.h_n.transpose(1, 0, 2))  # (L*D, N, H) -> (N, L*D, H)
    c_n = None if states.c_n is None else np.ascontiguousarray(states.c_n.transpose(1, 0, 2))
    return padded, h_n, c_n


def _vectors_and_neighbors(
    runtime: ModelRuntime, token_ids: list[int], k: int | None, stop: Stop
) -> tuple[np.ndarray, Neighbors | None]:
    vectors = runtime.embeddings(token_ids)
    return vectors, runtime.neighbors(token_ids, k, stop) if k is not None and token_ids else None
