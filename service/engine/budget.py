"""A per-worker bound on the memory that vector answers (/embed, /hidden-states, OIP hidden states) take
while being built and sent.

Such an answer holds a float per token and dimension. 16 texts of 600 tokens through a bidirectional LSTM
of 128 units is 2.5 million floats: the model's padded output (10 MB) plus onnxruntime's working buffers
(about 50 MB more for that batch, kept in its arena afterwards), and 28 MB of JSON. The JSON is sent one
result at a time (:mod:`service.api.streaming`: the same bytes as one ``orjson.dumps``), so it never exists
whole; what is left was measured on a real server with the default models (the worker's RSS before and
its peak during such requests) and rounded up into the bytes per float below.

Each verb estimates its answer's cost from the request's shape before running anything
(:func:`hidden_states_cost`, :func:`embed_cost`) and works within a reservation of that many bytes
(:meth:`VectorBudget.reserve`), which the protocol adapter releases once the last byte is sent. A request
that would take the worker's reservations past ``LSTM_SERVICE_MAX_VECTOR_BYTES`` gets 429 with
``Retry-After`` at once, and one that could never fit gets 413: the worker's memory stays within its
baseline plus the budget, whatever the traffic. One event loop per worker reserves and releases, so no
lock is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from service.engine.runtime import NEIGHBOR_CHUNK, ModelRuntime
from service.errors import Overloaded, PayloadTooLarge
from service.units import MIB

# Peak bytes per float of the answer (hidden states: per float of the padded model output), measured
# with 16 texts of 600 tokens, rounded up.
HIDDEN_STATES_BYTES_PER_FLOAT = 32
EMBED_BYTES_PER_FLOAT = 24
NEIGHBOR_BYTES = 400  # per neighbour of a token: a dict of id, token and similarity, then its JSON
NEIGHBOR_SEARCH_BYTES = 12  # per (token, vocabulary entry) pair: similarity and partition index
# Per request, whatever its size: the parsed body, the encodings, the answer's small parts.
BASE_COST = 256 * 1024
RETRY_AFTER_SECONDS = 1

Release = Callable[[], None]


def hidden_states_cost(runtime: ModelRuntime, token_counts: Sequence[int]) -> int:
    """Bytes to answer hidden states for texts of these token counts. The model's output is padded to
    the longest text, so that is what counts."""
    floats = len(token_counts) * max(token_counts, default=0) * runtime.hidden_width
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


def released() -> None:
    """The release of a reservation of nothing."""


class VectorBudget:
    """Bytes of vector answers this worker may hold at once (``limit``); ``in_flight`` are reserved."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def reserve(self, cost: int) -> Release:
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
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                self.in_flight -= cost

        return release
