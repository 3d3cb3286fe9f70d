"""The micro-batcher's loop, driven with a plain Python function in place of the model.

Nothing here asserts timing: a ``threading.Event`` holds the worker thread inside ``run_batch``
wherever a test needs requests to pile up behind a running batch.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

import pytest

from service.engine.batching import (
    BatcherStopped,
    BatchFailed,
    BatchLimits,
    BatchStats,
    Expired,
    MicroBatcher,
    QueueFull,
    _Item,
    _Request,
    collate,
)

WAIT = 10.0  # seconds; a generous bound so a bug fails the test instead of hanging it


def run(coroutine):
    async def bounded():
        return await asyncio.wait_for(coroutine, WAIT)

    return asyncio.run(bounded())


class FakeModel:
    """``run_batch`` stand-in: doubles every payload, remembers each batch, can hold or fail."""

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[list] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, payloads: list) -> list:
        self.batches.append(list(payloads))
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the model"
        if any(payload == "boom" for payload in payloads):
            raise ValueError("model exploded")
        return [payload * 2 for payload in payloads]

    async def wait_until_running(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, WAIT)


async def settle() -> None:
    """Let queued callbacks and tasks run (submissions reach the queue)."""
    for _ in range(5):
        await asyncio.sleep(0)


def test_results_come_back_in_order_for_concurrent_requests():
    async def scenario():
        model = FakeModel()
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=4, max_wait_ms=1), size=lambda _: 1
        ) as batcher:
            requests = [
                list(range(start, start + count)) for start, count in ((0, 1), (10, 7), (100, 3), (7, 0))
            ]
            results = await asyncio.gather(*(batcher.submit(items) for items in requests))
        assert results == [[item * 2 for item in items] for items in requests]
        assert all(len(batch) <= 4 for batch in model.batches)

    run(scenario())


def test_a_request_larger_than_a_batch_is_split_and_reassembled():
    async def scenario():
        model = FakeModel()
        sizes = []
        async with MicroBatcher(
            model,
            BatchLimits(max_batch_size=3, max_wait_ms=0),
            size=lambda _: 1,
            on_batch=lambda s: sizes.append(s.size),
        ) as batcher:
            result = await batcher.submit(list(range(10)))
        assert result == [item * 2 for item in range(10)]
        assert len(model.batches) >= 4 and max(sizes) <= 3 and sum(sizes) == 10

    run(scenario())


def test_each_batch_holds_items_of_similar_length():
    async def scenario():
        model = FakeModel(hold=True)
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=32, max_wait_ms=0, max_padding=0.5)
        ) as batcher:
            first = asyncio.create_task(batcher.submit(["x"]))
            await model.wait_until_running()  # everything below queues behind this batch
            texts = ["a" * length for length in (120, 3, 4, 118, 5, 3, 125, 4)]
            rest = asyncio.create_task(batcher.submit(texts))
            await settle()
            model.release.set()
            assert await first == ["xx"]
            assert await rest == [text * 2 for text in texts]
        queued_batches = model.batches[1:]
        assert sorted(len(batch) for batch in queued_batches) == [
            3,
            5,
        ]  # the long three apart from the short five
        for batch in queued_batches:
            lengths = [len(text) for text in batch]
            assert lengths == sorted(lengths)

    run(scenario())


def _item(size: int, deadline: float | None = None, done: bool = False) -> _Item:
    loop = asyncio.new_event_loop()
    future = loop.create_future()
    if done:
        future.cancel()
    loop.close()
    return _Item(_Request(future, [None], 1, deadline, None), 0, "x" * size, size, 0.0)


def test_collate_cuts_by_size_and_padding_and_splits_off_expired_and_finished_items():
    now = 100.0
    items = [
        _item(10),
        _item(11),
        _item(12),
        _item(40),
        _item(42),
        _item(9, deadline=now),
        _item(5, done=True),
    ]

    def sizes(plan):
        return [[item.size for item in batch] for batch in plan.batches]

    queue = deque(items)
    plan = collate(queue, now, BatchLimits(max_batch_size=2, max_padding=0.5))
    assert not queue
    assert sizes(plan) == [[10, 11], [12], [40, 42]]
    assert [item.size for item in plan.expired] == [9]

    assert sizes(collate(deque(items[:5]), now, BatchLimits(max_padding=0.5))) == [[10, 11, 12], [40, 42]]
    assert sizes(collate(deque(items[:5]), now, BatchLimits(max_padding=10.0))) == [[10, 11, 12, 40, 42]]
    # 3 x 12 = 36 padded tokens fit a budget of 40, 4 x 40 = 160 do not; an item over the budget runs alone
    tight = BatchLimits(max_batch_tokens=40, max_padding=10.0)
    assert sizes(collate(deque(items[:5]), now, tight)) == [[10, 11, 12], [40], [42]]


def test_stop_drains_every_queued_item():
    async def scenario():
        model = FakeModel(hold=True)
        batcher = MicroBatcher(model, BatchLimits(max_batch_size=2, max_wait_ms=0), size=lambda _: 1)
        batcher.start()
        tasks = [asyncio.create_task(batcher.submit([index, index + 100])) for index in range(6)]
        await model.wait_until_running()
        await settle()
        stopping = asyncio.create_task(batcher.stop(drain=True))
        await settle()
        with pytest.raises(BatcherStopped):
            await batcher.submit([1])  # refused once stopping began
        model.release.set()
        await stopping
        assert [task.result() for task in tasks] == [[index * 2, (index + 100) * 2] for index in range(6)]
        assert batcher.queued == 0 and not batcher.running

    run(scenario())


def test_stop_without_drain_fails_the_queued_requests():
    async def scenario():
        model = FakeModel(hold=True)
        batcher = MicroBatcher(model, BatchLimits(max_batch_size=1, max_wait_ms=0), size=lambda _: 1)
        batcher.start()
        running = asyncio.create_task(batcher.submit([1]))
        await model.wait_until_running()
        queued = asyncio.create_task(batcher.submit([2]))
        await settle()
        await batcher.stop(drain=False)
        model.release.set()
        for task in (running, queued):
            with pytest.raises(BatcherStopped):
                await task

    run(scenario())


def test_overloaded_past_the_bound_and_admitted_again_once_drained():
    async def scenario():
        model = FakeModel(hold=True)
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=8, max_wait_ms=0, max_queued=4), size=lambda _: 1
        ) as batcher:
            running = asyncio.create_task(batcher.submit([0]))
            await model.wait_until_running()
            queued = asyncio.create_task(batcher.submit([1, 2, 3]))
            await settle()
            with pytest.raises(QueueFull) as refused:
                await batcher.submit([4, 5])
            assert refused.value.retry_after >= 1 and batcher.counters.rejected_requests == 1
            fits = asyncio.create_task(batcher.submit([4]))
            await settle()
            model.release.set()
            assert [await running, await queued, await fits] == [[0], [2, 4, 6], [8]]
            assert await batcher.submit(list(range(9))) == [
                item * 2 for item in range(9)
            ]  # empty queue: admitted

    run(scenario())


def test_a_request_whose_deadline_passes_while_queued_fails_and_never_runs():
    async def scenario():
        model = FakeModel(hold=True)
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=8, max_wait_ms=0), size=lambda _: 1
        ) as batcher:
            running = asyncio.create_task(batcher.submit([1]))
            await model.wait_until_running()
            with pytest.raises(Expired):
                await batcher.submit([2], deadline=time.monotonic() + 0.01)
            with pytest.raises(Expired):
                await batcher.submit([3], deadline=time.monotonic() - 1)
            model.release.set()
            assert await running == [2]
            assert await batcher.submit([4], deadline=time.monotonic() + WAIT) == [8]
        assert model.batches == [[1], [4]]
        assert batcher.counters.expired_requests == 2

    run(scenario())


def test_a_failing_batch_fails_only_its_requests_and_the_loop_goes_on():
    async def scenario():
        model = FakeModel()
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=1, max_wait_ms=0), size=lambda _: 1
        ) as batcher:
            outcomes = await asyncio.gather(
                batcher.submit([1]), batcher.submit(["boom"]), batcher.submit([3]), return_exceptions=True
            )
            assert outcomes[0] == [2] and outcomes[2] == [6]
            assert isinstance(outcomes[1], BatchFailed) and isinstance(outcomes[1].__cause__, ValueError)
            assert await batcher.submit([5]) == [10]
        assert batcher.counters.failed_batches == 1

    run(scenario())


def test_a_failing_batch_fails_every_request_inside_it():
    async def scenario():
        model = FakeModel(hold=True)
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=8, max_wait_ms=0), size=lambda _: 1
        ) as batcher:
            first = asyncio.create_task(batcher.submit([0]))
            await model.wait_until_running()
            together = [asyncio.create_task(batcher.submit(items)) for items in ([1], ["boom"], [3, 4])]
            await settle()
            model.release.set()
            assert await first == [0]
            outcomes = await asyncio.gather(*together, return_exceptions=True)
            assert all(isinstance(outcome, BatchFailed) for outcome in outcomes)
            assert await batcher.submit([7]) == [14]

    run(scenario())


def test_cancelled_requests_are_skipped_and_do_not_break_the_loop():
    async def scenario():
        model = FakeModel(hold=True)
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=8, max_wait_ms=0), size=lambda _: 1
        ) as batcher:
            running = asyncio.create_task(batcher.submit([1, 2]))
            await model.wait_until_running()
            queued = asyncio.create_task(batcher.submit([3]))
            kept = asyncio.create_task(batcher.submit([4]))
            await settle()
            running.cancel()  # its items are inside the running batch
            queued.cancel()  # its item is still queued
            await settle()
            model.release.set()
            assert await kept == [8]
            assert await batcher.submit([5]) == [10]
            assert running.cancelled() and queued.cancelled()
        assert [3] not in model.batches and all(3 not in batch for batch in model.batches)

    run(scenario())


def test_stats_hook_sees_every_batch_and_a_broken_hook_is_harmless():
    async def scenario():
        seen: list[BatchStats] = []

        def hook(stats: BatchStats) -> None:
            seen.append(stats)
            raise RuntimeError("metrics backend down")

        async with MicroBatcher(
            FakeModel(), BatchLimits(max_batch_size=4, max_wait_ms=0), on_batch=hook
        ) as batcher:
            assert await batcher.submit(["ab", "abcd"]) == ["abab", "abcdabcd"]
            assert await batcher.submit(["c"]) == ["cc"]
        assert sum(stats.size for stats in seen) == 3
        assert all(stats.run_seconds >= 0 and len(stats.queue_seconds) == stats.size for stats in seen)
        assert all(stats.padded_tokens >= stats.tokens for stats in seen)

    run(scenario())


def test_settings_are_checked_up_front():
    with pytest.raises(ValueError, match="max_batch_size"):
        MicroBatcher(FakeModel(), BatchLimits(max_batch_size=0))
    with pytest.raises(ValueError, match="max_wait_ms"):
        MicroBatcher(FakeModel(), BatchLimits(max_wait_ms=-1))
    with pytest.raises(BatcherStopped):
        run(MicroBatcher(FakeModel()).submit([1]))


def test_a_lone_client_never_waits_for_the_batch_to_fill():
    async def scenario():
        model = FakeModel()
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=32, max_wait_ms=60_000), size=lambda _: 1
        ) as batcher:
            for item in range(3):  # each would hang for a minute if the batcher waited for company
                assert await asyncio.wait_for(batcher.submit([item, item]), WAIT / 2) == [item * 2, item * 2]

    run(scenario())


def test_after_concurrent_requests_the_batch_waits_to_fill():
    async def scenario():
        model = FakeModel()
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=4, max_wait_ms=60_000), size=lambda _: 1
        ) as batcher:
            assert await asyncio.gather(batcher.submit([1]), batcher.submit([2])) == [[2], [4]]
            first = asyncio.create_task(batcher.submit([3]))
            await settle()
            assert batcher.queued == 1  # still queued: the batch waits to fill, since traffic was concurrent
            rest = await asyncio.gather(*(batcher.submit([item]) for item in (4, 5, 6)))
            assert [await first, *rest] == [[6], [8], [10], [12]]
        assert model.batches[-1] == [3, 4, 5, 6]

    run(scenario())


class Stopwatch:
    """A request's model-time record, as the service's RequestRecord receives it."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def add_model_time(self, queue_seconds: float, inference_seconds: float) -> None:
        self.calls.append((queue_seconds, inference_seconds))


def test_each_request_is_told_the_run_time_of_every_batch_that_held_its_items():
    async def scenario():
        model = FakeModel()
        split, alone, untimed = Stopwatch(), Stopwatch(), None
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=2, max_wait_ms=0), size=lambda _: 1
        ) as batcher:
            assert await batcher.submit([1, 2, 3, 4, 5], model_time=split) == [2, 4, 6, 8, 10]
            assert await batcher.submit([6], model_time=alone) == [12]
            assert await batcher.submit([7], model_time=untimed) == [14]
        assert len(split.calls) == 3  # five items, batches of two: three model calls
        assert len(alone.calls) == 1
        assert all(queue == 0.0 and run >= 0.0 for queue, run in split.calls + alone.calls)

    run(scenario())


def test_the_batcher_refusals_become_the_service_errors_in_one_place():
    from service.engine.inference import service_error
    from service.errors import INTERNAL_MESSAGE, ErrorType

    full = service_error(QueueFull(7, 4, retry_after=2))
    assert full.error_type is ErrorType.overloaded and full.headers == {"Retry-After": "2"}
    assert "7 texts queued" in full.message
    assert service_error(Expired("late")).error_type is ErrorType.timeout
    assert service_error(BatcherStopped("bye")).error_type is ErrorType.unavailable
    failed = service_error(BatchFailed("inference failed"))  # the batcher logged the cause already
    assert failed.error_type is ErrorType.internal and failed.message == INTERNAL_MESSAGE
