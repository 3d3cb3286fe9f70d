"""A per-worker bound on the memory that vector answers (/embed, /hidden-states) take while being built.

Such an answer holds a float per token and dimension. 16 texts of 600 tokens through a bidirectional LSTM
of 128 units is 2.5 million floats: the model's padded output (10 MB) plus onnxruntime's working buffers
(about 50 MB more for that batch, kept in its arena afterwards), and 28 MB of JSON. The JSON is sent one
result at a time (:class:`_StreamedAnswer`: the same bytes as one ``orjson.dumps``), so it never exists
whole; what is left was measured on a real server with the default models (the worker's RSS before and
its peak during such requests) and rounded up into the bytes per float below.

Each route estimates its answer's cost from the request's shape before running anything
(:func:`hidden_states_cost`, :func:`embed_cost`) and answers within a reservation of that many bytes
(:meth:`VectorBudget.answer`), held until the last byte is sent. A request that would take the worker's
reservations past ``LSTM_SERVICE_MAX_VECTOR_BYTES`` gets 429 with ``Retry-After`` at once, and one that
could never fit gets 413: the worker's memory stays within its baseline plus the budget, whatever the
traffic. One event loop per worker reserves and releases, so no lock is needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from service.api.responses import OPTIONS, OrjsonResponse
from service.engine.runtime import NEIGHBOR_CHUNK, ModelRuntime
from service.errors import Overloaded, PayloadTooLarge

HIDDEN_STATES_OUTPUT = "hidden_states"  # one of the graph's outputs (service.bundle.graph.OUTPUTS)
# Peak bytes per float of the answer (hidden states: per float of the padded model output), measured
# with 16 texts of 600 tokens, rounded up.
HIDDEN_STATES_BYTES_PER_FLOAT = 32
EMBED_BYTES_PER_FLOAT = 24
NEIGHBOR_BYTES = 400  # per neighbour of a token: a dict of id, token and similarity, then its JSON
NEIGHBOR_SEARCH_BYTES = 12  # per (token, vocabulary entry) pair: similarity and partition index
# Per request, whatever its size: the parsed body, the encodings, the answer's small parts.
BASE_COST = 256 * 1024
RETRY_AFTER_SECONDS = 1
MIB = 1 << 20


def hidden_width(runtime: ModelRuntime) -> int:
    """Floats per token of the graph's hidden_states output (hidden x directions, its last dimension)."""
    for output in runtime.session.get_outputs():
        if output.name == HIDDEN_STATES_OUTPUT and isinstance(output.shape[-1], int):
            return int(output.shape[-1])
    return 2 * runtime.embedding_dim  # a graph with a symbolic width: a guess of the usual size


def hidden_states_cost(runtime: ModelRuntime, token_counts: Sequence[int]) -> int:
    """Bytes to answer /hidden-states for texts of these token counts. The model's output is padded to
    the longest text, so that is what counts."""
    floats = len(token_counts) * max(token_counts, default=0) * hidden_width(runtime)
    return BASE_COST + floats * HIDDEN_STATES_BYTES_PER_FLOAT


def embed_cost(runtime: ModelRuntime, token_count: int, neighbors: int | None = None) -> int:
    """Bytes to answer /embed for ``token_count`` tokens (all texts together), with ``neighbors`` each:
    the vectors, the neighbours (Python lists in the answer), and the neighbour search, which holds a
    similarity row and its sort indices per vocabulary entry for up to ``NEIGHBOR_CHUNK`` tokens."""
    cost = BASE_COST + token_count * runtime.embedding_dim * EMBED_BYTES_PER_FLOAT
    if neighbors:
        search = min(token_count, NEIGHBOR_CHUNK) * runtime.tokenizer.vocab_size * NEIGHBOR_SEARCH_BYTES
        cost += token_count * neighbors * NEIGHBOR_BYTES + search
    return cost


async def _chunks(content: dict[str, Any]) -> AsyncIterator[bytes]:
    """``orjson.dumps(content)``, byte for byte, one result at a time (``results`` is the last key)."""
    head = orjson.dumps({key: value for key, value in content.items() if key != "results"}, option=OPTIONS)
    yield head[:-1] + (b',"results":[' if len(head) > 2 else b'"results":[')
    for index, result in enumerate(content["results"]):
        yield (b"," if index else b"") + orjson.dumps(result, option=OPTIONS)
    yield b"]}"


class _StreamedAnswer(StreamingResponse):
    """The answer sent as it is serialised; releases its reservation once sent (or once sending failed)."""

    def __init__(self, content: dict[str, Any], release: Callable[[], None]) -> None:
        self._release = release
        super().__init__(_chunks(content), media_type="application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


class _ReleasingAnswer(OrjsonResponse):
    """An answer without a ``results`` list at the end, rendered whole; releases like the streamed one."""

    def __init__(self, content: Any, release: Callable[[], None]) -> None:
        self._release = release
        super().__init__(content)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


class VectorBudget:
    """Bytes of vector answers this worker may hold at once (``limit``); ``in_flight`` are reserved."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def reserve(self, cost: int) -> Callable[[], None]:
        """Reserve ``cost`` bytes, or raise 413 (never fits) / 429 (not now); returns the release, which
        is safe to call more than once."""
        if cost > self.limit:
            raise PayloadTooLarge(
                f"this answer would take about {cost / MIB:.0f} MiB to build, more than this server allows "
                f"for one answer ({self.limit / MIB:.0f} MiB, LSTM_SERVICE_MAX_VECTOR_BYTES); send fewer "
                "or shorter texts"
            )
        if self.in_flight + cost > self.limit:
            raise Overloaded(
                f"the server is building other large answers ({self.in_flight / MIB:.0f} of "
                f"{self.limit / MIB:.0f} MiB in use); retry in {RETRY_AFTER_SECONDS} s",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self.in_flight += cost
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight -= cost

        return release

    async def answer(self, cost: int, build: Callable[[], Awaitable[Any]]) -> Response:
        """The JSON answer ``await build()``, built and sent within a reservation of ``cost`` bytes."""
        release = self.reserve(cost)
        try:
            content = await build()
            if isinstance(content, dict) and isinstance(content.get("results"), list):
                if list(content)[-1] == "results":
                    return _StreamedAnswer(content, release)
            return _ReleasingAnswer(content, release)
        except BaseException:
            release()
            raise


@lru_cache(maxsize=8)
def vector_budget(limit: int) -> VectorBudget:
    """This worker's budget (one per process and limit: memory is the process's, whichever app asks)."""
    return VectorBudget(limit)
