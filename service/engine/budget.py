"""A per-worker bound on the memory that vector answers (/embed, /hidden-states, OIP hidden states) take
while being built and sent.

Such an answer holds a float per token and dimension. 16 texts of 600 tokens through a bidirectional LSTM
of 128 units is 2.5 million floats: the model's padded output (10 MB) plus onnxruntime's working buffers
(about 50 MB more for that batch, kept in its arena afterwards), and 28 MB of JSON. The JSON is sent one
result at a time (:mod:`service.api.streaming`: the same bytes as one ``orjson.dumps``), so it never exists
whole; what is left was measured on a real server with the default models (the worker's RSS before and
its peak during such requests) and rounded up into the bytes per float below.

Each verb estimates its answer's cost from the request's shape before tokenizing anything (texts'
lengths bound their token counts: :func:`upper_bound_tokens`), reserves that many bytes
(:meth:`VectorBudget.reserve`), shrinks the reservation to the real cost once the texts are tokenized, and
hands it to the protocol adapter, which releases it once the last byte is sent. A refusal therefore costs
no tokenizing: one that could never fit gets 413, and one that would have to wait too long gets 429 with
the expected wait as ``Retry-After``; others wait their turn. The worker's memory stays within its baseline
plus the budget, whatever the traffic. One event loop per worker reserves and releases, so no lock is
needed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


def upper_bound_tokens(texts: Sequence[str], max_length: int) -> list[int]:
    """A bound on each text's token count, known before tokenizing: no tokenizer mode makes more tokens
    than characters, and a text the model reads has at most ``max_length`` (a longer one is cut, or
    refused with 422)."""
    return [min(len(text), max_length) for text in texts]


# How long the budget's history of released reservations runs, to estimate how fast it frees bytes.
_RATE_WINDOW_SECONDS = 60.0


@dataclass
class _Waiter:
    cost: int
    admitted: asyncio.Future[None]


class Reservation:
    """Bytes held in a :class:`VectorBudget`; :meth:`release` (idempotent) gives them back, :meth:`shrink`
    gives back what a finer estimate no longer needs."""

    def __init__(self, budget: VectorBudget, cost: int) -> None:
        self._budget, self.cost = budget, cost
        self._started = time.monotonic()
        self._done = False

    def shrink(self, cost: int) -> None:
        if not self._done and cost < self.cost:
            self._budget._give_back(self.cost - cost, finished=False)
            self.cost = cost

    def release(self) -> None:
        if not self._done:
            self._done = True
            self._budget._give_back(self.cost, finished=True)


class VectorBudget:
    """Bytes of vector answers this worker may hold at once (``limit``); ``in_flight`` are reserved.

    Admission is first come, first served: a request that does not fit waits in a short FIFO queue (at
    most ``max_waiting`` requests) for the bytes the answers before it give back, so no route starves
    another; a request is refused at once (429) when the queue is full or when the wait the budget
    expects (from how fast it has been giving bytes back) would outlast the request's deadline, with
    that expected wait as ``Retry-After``. ``high_water`` is the most ever reserved at once.
    """

    def __init__(self, limit: int, max_waiting: int = 8) -> None:
        self.limit = limit
        self.max_waiting = max_waiting
        self.in_flight = 0
        self.high_water = 0
        self._waiters: deque[_Waiter] = deque()
        self._released: deque[tuple[float, int]] = deque()  # (when, bytes) of finished reservations

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def check(self, cost: int) -> None:
        """413 for an answer that could never fit, whatever else is running."""
        if cost > self.limit:
            raise PayloadTooLarge(
                f"this answer would take about {cost / MIB:.0f} MiB to build, more than this server allows "
                f"for one answer ({self.limit / MIB:.0f} MiB, LSTM_SERVICE_MAX_VECTOR_BYTES); send fewer "
                "or shorter texts"
            )

    def expected_wait(self, cost: int) -> float | None:
        """Seconds until ``cost`` more bytes would fit behind the waiters, at the rate bytes have been
        given back lately; None before anything was given back (no history to go by)."""
        self._forget_old(time.monotonic())
        if len(self._released) < 2:
            return None
        span = max(self._released[-1][0] - self._released[0][0], 1e-3)
        rate = sum(size for _, size in self._released) / span  # bytes per second
        queued = sum(waiter.cost for waiter in self._waiters)
        return max(0.0, self.in_flight + queued + cost - self.limit) / rate

    async def reserve(self, cost: int, seconds_left: float | None = None) -> Reservation:
        """``cost`` bytes, now or after the waiters before it; 413 (never fits), or 429 with
        ``Retry-After`` (the queue is full, or the expected wait outlasts ``seconds_left``)."""
        self.check(cost)
        if not self._waiters and self.in_flight + cost <= self.limit:
            return self._take(cost)
        expected = self.expected_wait(cost)
        late = seconds_left is not None and expected is not None and expected >= seconds_left
        if len(self._waiters) >= self.max_waiting or late:
            raise self._overloaded(expected)
        waiter = _Waiter(cost, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.admitted), seconds_left)
        except BaseException as error:
            if waiter.admitted.done() and not waiter.admitted.cancelled():
                self._give_back(cost, finished=False)  # admitted just as the wait ended: not used
            else:
                waiter.admitted.cancel()
                self._waiters.remove(waiter)
                self._admit_waiters()
            if isinstance(error, asyncio.TimeoutError):
                raise self._overloaded(self.expected_wait(cost)) from None
            raise
        return Reservation(self, cost)

    def refuse_if_full(self) -> None:
        """429 when :meth:`reserve` would refuse any request at all: it would have to wait (others are
        waiting, or not even the smallest answer, ``BASE_COST``, fits now) and the waiters' queue is
        full. Decided before the request's body is read or its texts tokenized, so a refusal costs the
        server next to nothing while the budget is busy."""
        must_wait = bool(self._waiters) or self.in_flight + BASE_COST > self.limit
        if must_wait and len(self._waiters) >= self.max_waiting:
            raise self._overloaded(self.expected_wait(BASE_COST))

    def _overloaded(self, expected: float | None) -> Overloaded:
        retry_after = max(RETRY_AFTER_SECONDS, math.ceil(expected or 0))
        return Overloaded(
            f"the server is building other large answers ({self.in_flight / MIB:.0f} of "
            f"{self.limit / MIB:.0f} MiB in use, {len(self._waiters)} waiting); retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )

    def _take(self, cost: int) -> Reservation:
        self.in_flight += cost
        self.high_water = max(self.high_water, self.in_flight)
        return Reservation(self, cost)

    def _give_back(self, size: int, finished: bool) -> None:
        self.in_flight -= size
        if finished:
            now = time.monotonic()
            self._released.append((now, size))
            self._forget_old(now)
        self._admit_waiters()

    def _admit_waiters(self) -> None:
        """Admit waiters in arrival order while the first one fits (never past it: first come, first
        served)."""
        while self._waiters and self.in_flight + self._waiters[0].cost <= self.limit:
            waiter = self._waiters.popleft()
            if waiter.admitted.done():  # gave up waiting
                continue
            self.in_flight += waiter.cost
            self.high_water = max(self.high_water, self.in_flight)
            waiter.admitted.set_result(None)

    def _forget_old(self, now: float) -> None:
        while self._released and now - self._released[0][0] > _RATE_WINDOW_SECONDS:
            self._released.popleft()
