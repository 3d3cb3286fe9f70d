"""Several live deadlines at once: each request's deadline is enforced while the model is busy with an
earlier batch, not only the first one's (the timer is re-armed for the next deadline).

As in test_batcher.py, a ``threading.Event`` holds the worker thread inside ``run_batch``; the model is
released only after the deadlines were checked, so a deadline that is not enforced fails an assertion."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from service.engine.batching import BatchLimits, Expired, MicroBatcher

WAIT = 10.0  # seconds; a bound so a bug fails an assertion instead of hanging the test


class HeldModel:
    """``run_batch`` stand-in that holds the worker thread until released; doubles every payload."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, payloads: list[int]) -> list[int]:
        self.batches.append(list(payloads))
        self.entered.set()
        self.release.wait(WAIT)
        return [payload * 2 for payload in payloads]


@pytest.mark.parametrize("queued", [2, 4])
def test_every_queued_deadline_is_enforced_while_the_model_is_busy(queued: int) -> None:
    async def scenario() -> None:
        model = HeldModel()
        limits = BatchLimits(max_batch_size=8, max_wait_ms=0)
        async with MicroBatcher(model, limits, size=lambda _: 1) as batcher:
            busy = asyncio.create_task(batcher.submit([1]))
            assert await asyncio.to_thread(model.entered.wait, WAIT)
            now = time.monotonic()
            waiting = [
                asyncio.create_task(batcher.submit([10 + index], deadline=now + 0.05 * (index + 1)))
                for index in range(queued)
            ]
            done, _ = await asyncio.wait(waiting, timeout=WAIT / 2)
            model_was_busy = not model.release.is_set()
            model.release.set()
            assert model_was_busy
            assert len(done) == queued, f"{queued - len(done)} of {queued} deadlines not enforced"
            assert all(isinstance(task.exception(), Expired) for task in waiting)
            assert await busy == [2]
            assert await batcher.submit([5], deadline=time.monotonic() + WAIT) == [10]
        assert model.batches == [[1], [5]]  # the expired requests never ran
        assert batcher.counters.expired_requests == queued

    asyncio.run(asyncio.wait_for(scenario(), WAIT * 2))


def test_a_later_deadline_submitted_first_still_expires_after_an_earlier_one() -> None:
    async def scenario() -> None:
        model = HeldModel()
        async with MicroBatcher(model, BatchLimits(max_batch_size=8, max_wait_ms=0), size=lambda _: 1) as b:
            busy = asyncio.create_task(b.submit([1]))
            assert await asyncio.to_thread(model.entered.wait, WAIT)
            now = time.monotonic()
            late = asyncio.create_task(b.submit([2], deadline=now + 0.3))
            early = asyncio.create_task(b.submit([3], deadline=now + 0.05))
            done, _ = await asyncio.wait({late, early}, timeout=WAIT / 2)
            model_was_busy = not model.release.is_set()
            model.release.set()
            assert model_was_busy and done == {late, early}
            assert isinstance(late.exception(), Expired) and isinstance(early.exception(), Expired)
            await busy

    asyncio.run(asyncio.wait_for(scenario(), WAIT * 2))
