"""Where a request's model time goes, for the ``X-Queue-Time`` / ``X-Inference-Time`` headers and the log.

``inference``: the model calls that served the request (and tokenizing long texts in the pool); ``queue``:
the rest of the time it waited for them (a free pool thread, or its turn in the micro-batcher). The times
land on the request's :class:`service.observability.context.RequestRecord`; outside a request everything
here is a no-op. Pool threads and the batcher's thread do not inherit context variables, so the record
travels explicitly: captured when the work is handed over, and for the batcher inside the payload itself
(:func:`tag`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from service.observability.context import RECORD, RequestRecord

T = TypeVar("T")


def timed(call: Callable[[], T]) -> Callable[[], T]:
    """``call`` for a pool thread: the wait for the thread is queue time, the call is inference time."""
    record, submitted = RECORD.get(), time.perf_counter()
    if record is None:
        return call

    def run() -> T:
        started = time.perf_counter()
        try:
            return call()
        finally:
            record.add_model_time(started - submitted, time.perf_counter() - started)

    return run


class _TaggedIds(list):  # type: ignore[type-arg]
    """A text's token ids that remember which request they belong to (a list, so the model reads them)."""

    __slots__ = ("record",)
    record: RequestRecord | None


def tag(id_lists: Sequence[Sequence[int]]) -> list[list[int]]:
    """The batcher's payloads for the current request's texts."""
    record = RECORD.get()
    payloads = []
    for ids in id_lists:
        payload = _TaggedIds(ids)
        payload.record = record
        payloads.append(payload)
    return payloads  # type: ignore[return-value]


def timed_batches(run_batch: Callable[[list[Any]], T]) -> Callable[[list[Any]], T]:
    """A batcher's ``run_batch`` that adds each batch's run time to every request with a text in it."""

    def run(payloads: list[Any]) -> T:
        started = time.perf_counter()
        try:
            return run_batch(payloads)
        finally:
            seconds = time.perf_counter() - started
            tagged = (getattr(payload, "record", None) for payload in payloads)
            records = {id(record): record for record in tagged if record is not None}
            for record in records.values():
                record.add_model_time(0.0, seconds)

    return run


@contextmanager
def waiting_for_model() -> Iterator[None]:
    """Around an awaited batcher call: whatever of its wall time was not inference was queue time."""
    record = RECORD.get()
    if record is None:
        yield
        return
    started, inference_before = time.perf_counter(), record.inference_seconds or 0.0
    try:
        yield
    finally:
        inference = (record.inference_seconds or 0.0) - inference_before
        record.add_model_time(time.perf_counter() - started - inference, 0.0)
