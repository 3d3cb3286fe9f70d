"""Where a request's model time goes, for the ``X-Queue-Time`` / ``X-Inference-Time`` headers and the log.

``inference``: the model calls that served the request (and tokenizing long texts in the pool); ``queue``:
the rest of the time it waited for them (a free pool thread, or its turn in the micro-batcher). The times
land on the request's :class:`service.observability.context.RequestRecord`; outside a request everything
here is a no-op. Pool threads do not inherit context variables, so :func:`timed` captures the record when
the work is handed over; the micro-batcher is handed the record with the request's texts and adds each
batch's run time to it (:meth:`service.engine.batching.MicroBatcher.submit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from service.observability.context import RECORD

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
