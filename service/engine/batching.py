"""Dynamic micro-batching for asyncio: concurrent requests share one model call (stdlib only).

A request hands over a list of work items (one per text, e.g. its token ids) and awaits their
results. One background task drains the queue into batches (:func:`collate`, the whole policy)
and runs each batch through ``run_batch(items) -> results`` on a dedicated worker thread, so the
event loop keeps parsing requests while onnxruntime (which releases the GIL) computes.

Why the batches are cut by length: onnxruntime's LSTM computes every padded step (a batch of 32
with one 128-token text and 31 short ones costs as much as 32 texts of 128 tokens), while a batch
of 4 or more runs each token about twice as fast as batch 1. So the drained items are sorted by
length and cut wherever padding would add more than ``max_padding`` of the real tokens. A batch also
stays under ``max_batch_tokens`` padded tokens: onnxruntime's arena keeps the peak working set of any
call (32 news articles of 600 tokens grew a worker by 125 MB), and past a few thousand tokens a bigger
call is no faster per token.

Batching never changes a result as long as ``run_batch`` pads exactly (the bundle contract: a
padded text gives the same logits as the text alone); the batcher only decides who runs with whom.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class BatcherError(Exception):
    """Why a request's items got no results; the caller turns each kind into its own answer."""


class QueueFull(BatcherError):
    """Admitting the request would queue more than ``max_queued`` items; retry in ``retry_after`` s."""

    def __init__(self, queued: int, max_queued: int, retry_after: int = 1) -> None:
        super().__init__(f"{queued} texts are already queued (limit {max_queued}); retry in {retry_after} s")
        self.queued, self.max_queued, self.retry_after = queued, max_queued, retry_after


class Expired(BatcherError):
    """The request's deadline passed before all of its items ran."""


class BatchFailed(BatcherError):
    """``run_batch`` raised for a batch holding this request's items; the cause is chained."""


class BatcherStopped(BatcherError):
    """The batcher is stopping or stopped and takes no new work (the service is shutting down)."""


class ModelTime(Protocol):
    """Where a request's share of model time goes (:class:`service.observability.context.RequestRecord`)."""

    def add_model_time(self, queue_seconds: float, inference_seconds: float) -> None: ...


@dataclass(frozen=True)
class BatchLimits:
    """Every limit of a batcher, checked once here (the service builds one from its settings)."""

    max_batch_size: int = 32  # items per model call
    max_batch_tokens: int = 2048  # padded tokens (items x longest) per call; a longer item runs alone
    # Padding may add at most this fraction of the real tokens. 0.2 rather than 0.5: 5-7 % less CPU per
    # request on review texts at C=64 (smaller, tighter batches), 4 % on news paragraphs, same on articles.
    max_padding: float = 0.2
    max_wait_ms: float = 2.0  # how long the oldest item may wait for its batch to fill, under concurrency
    max_queued: int = 1024  # items waiting; past it, submit() raises QueueFull

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.max_batch_tokens < 1:
            raise ValueError(
                f"max_batch_tokens must be >= 1 (padded tokens per call), got {self.max_batch_tokens}"
            )
        if self.max_padding < 0:
            raise ValueError(
                "max_padding must be >= 0 (0.5 = padding may add half the real tokens), "
                f"got {self.max_padding}"
            )
        if self.max_wait_ms < 0:
            raise ValueError(
                f"max_wait_ms must be >= 0 (0 = never wait for a batch to fill), got {self.max_wait_ms}"
            )
        if self.max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {self.max_queued}")


@dataclass(frozen=True)
class BatchStats:
    """What one model call did; handed to ``on_batch`` (for metrics) after every batch."""

    size: int  # items in the batch
    requests: int  # distinct requests those items came from
    tokens: int  # sum of item sizes
    padded_tokens: int  # size x longest item: what the model really computes
    queue_seconds: tuple[float, ...]  # per item: enqueue -> batch start
    run_seconds: float  # wall time of run_batch
    failed: bool
    started_ns: int = 0  # time.time_ns() when the batch started (for its trace span)
    served: tuple[ModelTime, ...] = ()  # each request's ``model_time`` (tracing finds the requests' traces)


@dataclass
class BatcherCounters:
    """Running totals, cheap to read from a metrics collector."""

    batches: int = 0
    items: int = 0
    failed_batches: int = 0
    expired_requests: int = 0
    rejected_requests: int = 0


@dataclass(eq=False)
class _Request:
    future: asyncio.Future[list[Any]]
    results: list[Any]
    pending: int
    deadline: float | None  # time.monotonic() seconds
    model_time: ModelTime | None  # told the run time of every batch holding one of its items

    def fail(self, error: BaseException) -> bool:
        """Fail the request unless it already finished; True if this call failed it."""
        if self.future.done():
            return False
        self.future.set_exception(error)
        return True

    def deliver(self, index: int, result: Any) -> None:
        if self.future.done():  # failed, expired or cancelled meanwhile
            return
        self.results[index] = result
        self.pending -= 1
        if self.pending == 0:
            self.future.set_result(self.results)


@dataclass(eq=False, slots=True)
class _Item:
    request: _Request
    index: int  # position in the request's list
    payload: Any
    size: int
    enqueued_at: float


@dataclass
class _Plan:
    batches: list[list[_Item]] = field(default_factory=list)
    expired: list[_Item] = field(default_factory=list)


def collate(queue: deque[_Item], now: float, limits: BatchLimits) -> _Plan:
    """The batching policy: drain ``queue`` into length-sorted batches and split off expired items.

    Items of requests that are already finished (failed, expired, cancelled) are dropped. The rest
    are sorted by size and cut greedily: a batch closes when adding the next (longer) item would
    exceed ``max_batch_size`` items, ``max_batch_tokens`` padded tokens (``count x longest``), or
    ``(1 + max_padding) x`` the real tokens.
    """
    plan, live = _Plan(), []
    while queue:
        item = queue.popleft()
        if item.request.future.done():
            continue
        if item.request.deadline is not None and item.request.deadline <= now:
            plan.expired.append(item)
        else:
            live.append(item)
    live.sort(key=lambda item: item.size)
    batch: list[_Item] = []
    tokens = 0
    for item in live:  # ascending size, so item.size is the longest if it joins
        padded = (len(batch) + 1) * item.size
        too_padded = padded > (1 + limits.max_padding) * (tokens + item.size)
        if batch and (len(batch) == limits.max_batch_size or padded > limits.max_batch_tokens or too_padded):
            plan.batches.append(batch)
            batch, tokens = [], 0
        batch.append(item)
        tokens += item.size
    if batch:
        plan.batches.append(batch)
    return plan


class MicroBatcher:
    """Queue work items from many requests and run them through ``run_batch`` in batches.

    ``run_batch(payloads)`` runs on a worker thread and must return one result per payload, in order.
    Items that arrive while a batch runs always form the next one. ``max_wait_ms`` is how much longer
    the oldest queued item may wait for the batch to fill up to ``max_batch_size``; the batcher waits only
    when the previous drain held several requests, so a lone client never pays it (0: never wait).
    ``max_queued`` bounds the items waiting: past it, :meth:`submit` raises :class:`QueueFull` at once.
    The limits come in one :class:`BatchLimits`.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Any]], Collection[Any]],
        limits: BatchLimits = BatchLimits(),
        *,
        size: Callable[[Any], int] = len,
        executor: Executor | None = None,
        on_batch: Callable[[BatchStats], None] | None = None,
        name: str = "batcher",
    ) -> None:
        self._run_batch, self._size, self._on_batch, self.name = run_batch, size, on_batch, name
        self.limits = limits
        self.max_wait = limits.max_wait_ms / 1000
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._queue: deque[_Item] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._wake_at = 1  # wake the drain task once this many items are queued
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._concurrent = False  # did the last drain hold more than one request?
        # Requests with a deadline, in the order they came (their deadlines too: one timeout per service),
        # and one timer for the earliest: a timer per request cost more than the rest of submit().
        self._deadlines: deque[_Request] = deque()
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf
        self.counters = BatcherCounters()

    @property
    def queued(self) -> int:
        """Items waiting for a batch (for a gauge)."""
        return len(self._queue)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the drain task on the running event loop."""
        if self._task is not None:
            raise RuntimeError(f"{self.name} was already started; create a new MicroBatcher to restart")
        self._task = asyncio.get_running_loop().create_task(self._drain_forever(), name=self.name)

    async def stop(self, drain: bool = True, timeout: float | None = None) -> None:
        """Refuse new work; with ``drain``, finish every queued item first (for at most ``timeout`` s).

        Whatever is left unfinished (``drain=False`` or the timeout hit) fails with :class:`BatcherStopped`.
        """
        self._stopping = True
        self._wake()
        if self._task is not None and drain:
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:
                logger.warning(
                    "%s: drain did not finish within %s s; failing %d queued items",
                    self.name,
                    timeout,
                    self.queued,
                )
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for item in self._queue:
            item.request.fail(BatcherStopped(f"{self.name} stopped before this request ran"))
        self._queue.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep, self._sweep_at = None, math.inf
        if self._own_executor:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> MicroBatcher:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def submit(
        self, items: Sequence[Any], deadline: float | None = None, model_time: ModelTime | None = None
    ) -> list[Any]:
        """Queue ``items`` and return their results in order.

        ``deadline`` is a ``time.monotonic()`` instant: the request fails with :class:`Expired` when it
        passes, whether its items are still queued or running. Raises :class:`QueueFull` at once if
        admitting the items would queue more than ``max_queued`` (a request is always admitted into an
        empty queue, so one larger than the bound is not refused forever). ``model_time`` is told the
        run time of every batch that holds one of the items (before the results are handed over).
        """
        if self._stopping or self._task is None or self._task.done():
            raise BatcherStopped(f"{self.name} is not running (call start() first; stop() is final)")
        if not items:
            return []
        if self._queue and len(self._queue) + len(items) > self.limits.max_queued:
            self.counters.rejected_requests += 1
            raise QueueFull(len(self._queue), self.limits.max_queued)
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        request = _Request(loop.create_future(), [None] * len(items), len(items), deadline, model_time)
        self._queue.extend(
            _Item(request, index, payload, self._size(payload), now) for index, payload in enumerate(items)
        )
        if len(self._queue) >= self._wake_at:
            self._wake()
        if deadline is not None:
            deadlines = self._deadlines
            while deadlines and deadlines[0].future.done():  # answered ones leave, oldest first
                deadlines.popleft()
            deadlines.append(request)
            if deadline < self._sweep_at:
                self._arm_sweep(loop, deadline)
        return await request.future

    def _arm_sweep(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep_at = deadline
        self._sweep = loop.call_later(max(0.0, deadline - time.monotonic()), self._expire_overdue)

    def _expire_overdue(self) -> None:
        """Fail the requests whose deadline passed while they were queued or running; wait for the next.

        Runs about once per request timeout (deadlines come in order), so it may look at every request."""
        self._sweep, self._sweep_at = None, math.inf
        now = time.monotonic()
        waiting: deque[_Request] = deque()
        for request in self._deadlines:
            if request.future.done():
                continue
            if request.deadline is not None and request.deadline > now:
                waiting.append(request)
            else:
                self._expire(request, "while it was queued or running")
        self._deadlines = waiting
        if waiting:
            earliest = min(request.deadline for request in waiting if request.deadline is not None)
            self._arm_sweep(asyncio.get_running_loop(), earliest)

    # The drain task ---------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait_until(self, count: int, timeout: float | None) -> None:
        """Sleep until ``count`` items are queued, ``timeout`` passes, or stop() is called."""
        loop = asyncio.get_running_loop()
        self._waiter, self._wake_at = loop.create_future(), count
        timer = None if timeout is None else loop.call_later(timeout, self._wake)
        try:
            await self._waiter
        finally:
            self._waiter, self._wake_at = None, 1
            if timer is not None:
                timer.cancel()

    async def _drain_forever(self) -> None:
        while not (self._stopping and not self._queue):
            try:
                await self._drain_once()
            except Exception:  # a bug must not leave every later request hanging
                logger.exception("%s: unexpected error in the drain loop; continuing", self.name)

    async def _drain_once(self) -> None:
        if not self._queue:
            await self._wait_until(1, None)
            return
        # Let the batch fill for up to max_wait after its oldest item arrived, but only if the last drain
        # held several requests: a lone client would wait for company that cannot come.
        remaining = self._queue[0].enqueued_at + self.max_wait - time.monotonic()
        if (
            self._concurrent
            and remaining > 0
            and len(self._queue) < self.limits.max_batch_size
            and not self._stopping
        ):
            await self._wait_until(self.limits.max_batch_size, remaining)
        plan = collate(self._queue, time.monotonic(), self.limits)
        self._concurrent = len({id(item.request) for batch in plan.batches for item in batch}) > 1
        for item in plan.expired:
            self._expire(item.request, "before its batch was formed")
        for batch in plan.batches:
            await self._run(batch)

    def _expire(self, request: _Request, when: str) -> None:
        if request.fail(Expired(f"the request's deadline passed {when}")):
            self.counters.expired_requests += 1

    async def _run(self, batch: list[_Item]) -> None:
        """Run one batch on the worker thread and hand each result to its request."""
        now, started_ns = time.monotonic(), time.time_ns()
        for item in batch:  # an earlier batch of the same plan may have run past their deadline
            if item.request.deadline is not None and item.request.deadline <= now:
                self._expire(item.request, "before its batch was formed")
        batch = [item for item in batch if not item.request.future.done()]
        if not batch:
            return
        loop = asyncio.get_running_loop()
        error: BaseException | None = None
        try:
            try:
                results = await loop.run_in_executor(
                    self._executor, self._run_batch, [item.payload for item in batch]
                )
            finally:
                self._add_model_time(batch, time.monotonic() - now)
            if len(results) != len(batch):
                raise ValueError(f"run_batch returned {len(results)} results for {len(batch)} items")
        except asyncio.CancelledError:  # stop(drain=False) or a drain timeout
            for item in batch:
                item.request.fail(BatcherStopped(f"{self.name} stopped while this request ran"))
            raise
        except Exception as caught:
            error = caught
            logger.exception("%s: a batch of %d items failed; failing its requests", self.name, len(batch))
            for item in batch:
                failure = BatchFailed("inference failed")
                failure.__cause__ = caught
                item.request.fail(failure)
        else:
            for item, result in zip(batch, results, strict=True):
                item.request.deliver(item.index, result)
        self._record(batch, now, started_ns, time.monotonic() - now, failed=error is not None)

    @staticmethod
    def _add_model_time(batch: list[_Item], run_seconds: float) -> None:
        requests = {id(item.request): item.request for item in batch}
        for request in requests.values():
            if request.model_time is not None:
                request.model_time.add_model_time(0.0, run_seconds)

    def _record(
        self, batch: list[_Item], started: float, started_ns: int, run_seconds: float, failed: bool
    ) -> None:
        self.counters.batches += 1
        self.counters.items += len(batch)
        self.counters.failed_batches += failed
        if self._on_batch is None:
            return
        requests = {id(item.request): item.request for item in batch}
        stats = BatchStats(
            size=len(batch),
            requests=len(requests),
            tokens=sum(item.size for item in batch),
            padded_tokens=len(batch) * max(item.size for item in batch),
            queue_seconds=tuple(started - item.enqueued_at for item in batch),
            run_seconds=run_seconds,
            failed=failed,
            started_ns=started_ns,
            served=tuple(
                request.model_time for request in requests.values() if request.model_time is not None
            ),
        )
        try:
            self._on_batch(stats)
        except Exception:  # a broken metrics hook must not stop inference
            logger.exception("%s: on_batch hook failed", self.name)
