"""The micro-batcher at its edges, every refusal and failure compared whole: the limits' messages, the queue
bound at exactly its limit, a cut exactly at a padding or token limit, what each batch reports to its hook
and its counters, and the requests a stop, a failure or a deadline ends (a plain function as the model)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_batcher import WAIT, FakeModel, Stopwatch, _item, run, settle

from service.engine.batching import (
    BatcherStopped,
    BatchFailed,
    BatchLimits,
    BatchStats,
    Expired,
    MicroBatcher,
    QueueFull,
    collate,
)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be >= 1, got 0"),
        ({"max_batch_tokens": 0}, "max_batch_tokens must be >= 1 (padded tokens per call), got 0"),
        (
            {"max_padding": -0.1},
            "max_padding must be >= 0 (0.5 = padding may add half the real tokens), got -0.1",
        ),
        ({"max_wait_ms": -1}, "max_wait_ms must be >= 0 (0 = never wait for a batch to fill), got -1"),
        ({"max_queued": 0}, "max_queued must be >= 1, got 0"),
    ],
)
def test_each_limit_out_of_range_is_refused_with_its_message(limits: dict, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        BatchLimits(**limits)
    assert str(refused.value) == message


def test_the_smallest_limits_are_accepted() -> None:
    limits = BatchLimits(max_batch_size=1, max_batch_tokens=1, max_padding=0, max_wait_ms=0, max_queued=1)
    assert (limits.max_batch_size, limits.max_queued) == (1, 1)


def test_the_default_limits() -> None:
    assert BatchLimits() == BatchLimits(32, 2048, 0.2, 2.0, 1024)


def test_a_cut_falls_exactly_past_the_padding_and_token_limits() -> None:
    def sizes(limits: BatchLimits, *lengths: int) -> list[list[int]]:
        plan = collate(deque(_item(length) for length in lengths), 0.0, limits)
        return [[item.size for item in batch] for batch in plan.batches]

    # 2 x 5 = 10 padded tokens for 8 real ones: exactly 1.25 x, allowed; 2 x 6 = 12 for 9 is not
    assert sizes(BatchLimits(max_padding=0.25), 3, 5) == [[3, 5]]
    assert sizes(BatchLimits(max_padding=0.25), 3, 6) == [[3], [6]]
    # 2 x 10 = 20 padded tokens fit a budget of exactly 20
    assert sizes(BatchLimits(max_batch_tokens=20, max_padding=0), 10, 10) == [[10, 10]]
    assert sizes(BatchLimits(max_batch_tokens=19, max_padding=0), 10, 10) == [[10], [10]]
    # the real tokens restart with each batch
    assert sizes(BatchLimits(max_batch_size=2, max_padding=0.25), 4, 4, 5, 5, 5) == [[4, 4], [5, 5], [5]]
    plan = collate(deque([_item(3, deadline=1.0), _item(4, deadline=1.5)]), 1.0, BatchLimits())
    assert [item.size for item in plan.expired] == [3]  # a deadline at this very instant has passed
    assert [[item.size for item in batch] for batch in plan.batches] == [[4]]


def test_a_queue_exactly_at_its_bound_admits_and_one_over_is_refused_whole() -> None:
    async def scenario() -> None:
        model = FakeModel(hold=True)
        limits = BatchLimits(max_batch_size=8, max_wait_ms=0, max_queued=3)
        async with MicroBatcher(model, limits, size=lambda _: 1) as batcher:
            running = asyncio.create_task(batcher.submit([0]))
            await model.wait_until_running()
            queued = asyncio.create_task(batcher.submit([1, 2]))
            await settle()
            with pytest.raises(QueueFull) as refused:
                await batcher.submit([3, 4])
            error = refused.value
            assert str(error) == "2 texts are already queued (limit 3); retry in 1 s"
            assert (error.queued, error.max_queued, error.retry_after) == (2, 3, 1)
            assert batcher.counters.rejected_requests == 1
            fits = asyncio.create_task(batcher.submit([3]))  # 2 + 1 = 3: exactly the bound
            await settle()
            assert batcher.queued == 3
            model.release.set()
            assert [await running, await queued, await fits] == [[0], [2, 4], [6]]
            assert batcher.counters.rejected_requests == 1

    run(scenario())


def test_each_batch_reports_exactly_what_it_ran() -> None:
    async def scenario() -> None:
        seen: list[BatchStats] = []
        watch = Stopwatch()
        model = FakeModel()
        limits = BatchLimits(max_batch_size=8, max_padding=10.0, max_wait_ms=0)
        before = time.time_ns()
        async with MicroBatcher(model, limits, on_batch=seen.append) as batcher:
            assert await batcher.submit(["ab", "abcd", "a"], model_time=watch) == ["abab", "abcdabcd", "aa"]
            assert await batcher.submit(["xyz"]) == ["xyzxyz"]
            assert batcher.counters.batches == 2 and batcher.counters.items == 4
            assert batcher.counters.failed_batches == 0
        first, second = seen
        assert (first.size, first.requests, first.tokens, first.padded_tokens, first.failed) == (
            3,
            1,
            7,
            12,
            False,
        )
        assert first.served == (watch,) and second.served == ()
        assert (second.size, second.tokens, second.padded_tokens) == (1, 3, 3)
        assert len(first.queue_seconds) == 3 and all(0 <= wait < WAIT for wait in first.queue_seconds)
        assert 0 <= first.run_seconds < WAIT and before <= first.started_ns <= second.started_ns
        assert watch.calls == [(0.0, watch.calls[0][1])] and watch.calls[0][1] <= first.run_seconds + 1e-3

    run(scenario())


def test_a_failed_batch_is_counted_and_each_request_gets_the_cause(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        seen: list[BatchStats] = []
        limits = BatchLimits(max_batch_size=8, max_padding=10.0, max_wait_ms=0)
        async with MicroBatcher(FakeModel(), limits, on_batch=seen.append, name="tiny") as batcher:
            with pytest.raises(BatchFailed) as failed:
                await batcher.submit(["boom", "ok"])
            assert str(failed.value) == "inference failed"
            assert str(failed.value.__cause__) == "model exploded"
            assert (batcher.counters.batches, batcher.counters.failed_batches) == (1, 1)
            assert await batcher.submit(["ok"]) == ["okok"]
            assert (batcher.counters.batches, batcher.counters.failed_batches) == (2, 1)
        assert [stats.failed for stats in seen] == [True, False]

    with caplog.at_level(logging.ERROR, "service.engine.batching"):
        run(scenario())
    assert [record.getMessage() for record in caplog.records] == [
        "tiny: a batch of 2 items failed; failing its requests"
    ]


def test_a_model_that_returns_too_few_results_fails_the_batch() -> None:
    async def scenario() -> None:
        async with MicroBatcher(lambda payloads: payloads[:1], BatchLimits(max_wait_ms=0)) as batcher:
            with pytest.raises(BatchFailed) as failed:
                await batcher.submit(["a", "b"])
            assert str(failed.value.__cause__) == "run_batch returned 1 results for 2 items"
            assert batcher.counters.failed_batches == 1

    run(scenario())


def test_the_stopped_batchers_refusals_are_compared_whole() -> None:
    async def scenario() -> None:
        batcher = MicroBatcher(FakeModel(), name="tiny")
        assert not batcher.running
        with pytest.raises(BatcherStopped) as before_start:
            await batcher.submit([1])
        assert str(before_start.value) == "tiny is not running (call start() first; stop() is final)"
        batcher.start()
        assert batcher.running
        with pytest.raises(RuntimeError) as twice:
            batcher.start()
        assert str(twice.value) == "tiny was already started; create a new MicroBatcher to restart"
        assert await batcher.submit([]) == []
        await batcher.stop()
        assert not batcher.running
        with pytest.raises(BatcherStopped) as after_stop:
            await batcher.submit([1])
        assert str(after_stop.value) == "tiny is not running (call start() first; stop() is final)"

    run(scenario())


def test_a_stop_fails_the_running_and_the_queued_requests_with_their_messages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        model = FakeModel(hold=True)
        batcher = MicroBatcher(
            model, BatchLimits(max_batch_size=1, max_wait_ms=0), size=lambda _: 1, name="b1"
        )
        batcher.start()
        running = asyncio.create_task(batcher.submit([1]))
        await model.wait_until_running()
        queued = asyncio.create_task(batcher.submit([2]))
        await settle()
        await batcher.stop(drain=True, timeout=0.05)
        model.release.set()
        with pytest.raises(BatcherStopped) as ran:
            await running
        with pytest.raises(BatcherStopped) as waited:
            await queued
        assert str(ran.value) == "b1 stopped while this request ran"
        assert str(waited.value) == "b1 stopped before this request ran"
        assert batcher.queued == 0

    with caplog.at_level(logging.WARNING, "service.engine.batching"):
        run(scenario())
    assert [record.getMessage() for record in caplog.records] == [
        "b1: drain did not finish within 0.05 s; failing 1 queued items"
    ]


def test_each_way_a_deadline_passes_is_named_and_counted() -> None:
    async def scenario() -> None:
        model = FakeModel(hold=True)
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=1, max_wait_ms=0), size=lambda _: 1
        ) as batcher:
            running = asyncio.create_task(batcher.submit([1], deadline=time.monotonic() + 0.05))
            await model.wait_until_running()
            with pytest.raises(Expired) as during:
                await running
            assert str(during.value) == "the request's deadline passed while it was queued or running"
            assert batcher.counters.expired_requests == 1
            late = asyncio.create_task(batcher.submit([2], deadline=time.monotonic() - 1))
            await settle()
            model.release.set()
            with pytest.raises(Expired) as before:
                await late
            assert str(before.value) in {
                "the request's deadline passed before its batch was formed",
                "the request's deadline passed while it was queued or running",
            }
            assert batcher.counters.expired_requests == 2
            assert await batcher.submit([3], deadline=time.monotonic() + WAIT) == [6]
            assert batcher.counters.expired_requests == 2

    run(scenario())


def test_a_later_deadline_is_not_enforced_with_an_earlier_one() -> None:
    async def scenario() -> None:
        model = FakeModel(hold=True)
        limits = BatchLimits(max_batch_size=8, max_wait_ms=0)
        async with MicroBatcher(model, limits, size=lambda _: 1) as batcher:
            busy = asyncio.create_task(batcher.submit([1]))
            await model.wait_until_running()
            now = time.monotonic()
            early = asyncio.create_task(batcher.submit([2], deadline=now + 0.05))
            later = asyncio.create_task(batcher.submit([3], deadline=now + WAIT))
            with pytest.raises(Expired):
                await early
            await settle()
            assert not later.done(), "a deadline WAIT s away was enforced with one 0.05 s away"
            model.release.set()
            assert [await busy, await later] == [[2], [6]]
            assert batcher.counters.expired_requests == 1

    run(scenario())


def test_a_request_whose_client_left_does_not_hide_the_next_deadline() -> None:
    async def scenario() -> None:
        model = FakeModel(hold=True)
        limits = BatchLimits(max_batch_size=8, max_wait_ms=0)
        async with MicroBatcher(model, limits, size=lambda _: 1) as batcher:
            busy = asyncio.create_task(batcher.submit([1]))
            await model.wait_until_running()
            now = time.monotonic()
            gone = asyncio.create_task(batcher.submit([2], deadline=now + 0.5))
            waiting = asyncio.create_task(batcher.submit([3], deadline=now + 0.5))
            await settle()
            gone.cancel()  # its client left: the request is finished, still in the deadlines' queue
            await asyncio.gather(gone, return_exceptions=True)
            assert gone.cancelled() and not waiting.done()
            done, _ = await asyncio.wait({waiting}, timeout=WAIT / 2)
            model_was_busy = not model.release.is_set()
            model.release.set()
            assert model_was_busy and done == {waiting}, "the deadline was not enforced while the model ran"
            assert str(waiting.exception()) == "the request's deadline passed while it was queued or running"
            assert await busy == [2]
            assert batcher.counters.expired_requests == 1

    run(scenario())


def test_a_request_of_several_texts_counts_once_when_its_deadline_passes() -> None:
    async def scenario() -> None:
        model = FakeModel(hold=True)
        limits = BatchLimits(max_batch_size=1, max_wait_ms=0)
        async with MicroBatcher(model, limits, size=lambda _: 1) as batcher:
            # idle: the drain finds the three overdue texts in the queue
            with pytest.raises(Expired) as idle:
                await batcher.submit([1, 2, 3], deadline=time.monotonic() - 1)
            await settle()
            assert batcher.counters.expired_requests == 1
            # busy: the timer ends the request while the model runs its first text; its other two texts,
            # in the same drain's next batches, are not counted again
            now = time.monotonic()
            held = asyncio.create_task(batcher.submit([4, 5, 6], deadline=now + 0.05))
            with pytest.raises(Expired) as busy:
                await held
            model.release.set()
            await settle()
            assert await batcher.submit([7]) == [14]
            assert batcher.counters.expired_requests == 2
        assert str(busy.value) == "the request's deadline passed while it was queued or running"
        assert str(idle.value) in {
            "the request's deadline passed before its batch was formed",
            "the request's deadline passed while it was queued or running",
        }

    run(scenario())


def test_a_deadline_is_enforced_when_it_passes_not_a_second_later() -> None:
    async def scenario() -> None:
        model = FakeModel(hold=True)
        limits = BatchLimits(max_batch_size=8, max_wait_ms=0)
        async with MicroBatcher(model, limits, size=lambda _: 1) as batcher:
            busy = asyncio.create_task(batcher.submit([1]))
            await model.wait_until_running()
            started = time.monotonic()
            with pytest.raises(Expired) as expired:
                await batcher.submit([2], deadline=started + 0.05)
            waited = time.monotonic() - started
            model.release.set()
            assert waited < 0.6, f"a deadline 0.05 s away was enforced after {waited:.2f} s"
            assert str(expired.value) == "the request's deadline passed while it was queued or running"
            assert await busy == [2]

    run(scenario())


def test_the_drain_task_carries_the_batchers_name() -> None:
    async def scenario() -> None:
        async with MicroBatcher(FakeModel(), name="named-drain"):
            names = {task.get_name() for task in asyncio.all_tasks()}
            assert "named-drain" in names  # asyncio's task dumps and warnings name it

    run(scenario())


def test_an_unexpected_error_in_the_drain_loop_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        limits = BatchLimits(max_wait_ms=0)
        async with MicroBatcher(FakeModel(), limits, size=lambda payload: payload, name="tiny") as batcher:
            lost = asyncio.create_task(batcher.submit([None]))  # a size the policy cannot multiply
            await settle()
            assert await batcher.submit([3]) == [6]
            lost.cancel()

    with caplog.at_level(logging.ERROR, "service.engine.batching"):
        run(scenario())
    assert [record.getMessage() for record in caplog.records] == [
        "tiny: unexpected error in the drain loop; continuing"
    ]


def test_a_batcher_without_a_name_is_called_batcher() -> None:
    async def scenario() -> None:
        batcher = MicroBatcher(FakeModel())
        with pytest.raises(BatcherStopped) as refused:
            await batcher.submit([1])
        assert str(refused.value) == "batcher is not running (call start() first; stop() is final)"
        await batcher.stop()

    run(scenario())


def test_the_model_runs_on_the_batchers_own_thread_which_the_stop_ends() -> None:
    threads: list[str] = []

    def model(payloads: list[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        return [payload * 2 for payload in payloads]

    def alive() -> list[str]:
        return [thread.name for thread in threading.enumerate() if thread.name.startswith("own-thread")]

    async def scenario() -> None:
        batcher = MicroBatcher(model, BatchLimits(max_wait_ms=0), size=lambda _: 1, name="own-thread")
        async with batcher:
            assert await batcher.submit([1]) == [2]
            assert await batcher.submit([2]) == [4]
            assert alive() == ["own-thread_0"]  # a thread dump names the model
        deadline = time.monotonic() + WAIT / 5
        while alive():  # the batcher, still referenced here, shut its own thread down
            assert time.monotonic() < deadline, "the batcher's worker thread outlived its stop"
            await asyncio.sleep(0.01)

    run(scenario())
    assert threads == ["own-thread_0", "own-thread_0"]


def test_a_batcher_leaves_an_executor_it_was_given_running() -> None:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shared")
    try:

        async def scenario() -> None:
            async with MicroBatcher(
                FakeModel(), BatchLimits(max_wait_ms=0), size=lambda _: 1, executor=executor
            ) as batcher:
                assert await batcher.submit([1]) == [2]

        run(scenario())
        assert executor.submit(lambda: 42).result(WAIT) == 42  # still the caller's to use and to shut down
    finally:
        executor.shutdown()


def test_leaving_the_context_finishes_the_queued_and_the_running_requests() -> None:
    async def scenario() -> None:
        model = FakeModel(hold=True)
        async with MicroBatcher(
            model, BatchLimits(max_batch_size=1, max_wait_ms=0), size=lambda _: 1
        ) as batcher:
            running = asyncio.create_task(batcher.submit([1]))
            await model.wait_until_running()
            queued = asyncio.create_task(batcher.submit([2]))
            await settle()
            asyncio.get_running_loop().call_later(0.05, model.release.set)
        assert [await running, await queued] == [[2], [4]]
        assert model.batches == [[1], [2]]

    run(scenario())


def test_a_batcher_that_never_started_stops_quietly() -> None:
    async def scenario() -> None:
        batcher = MicroBatcher(FakeModel(), name="tiny")
        await batcher.stop()  # a service that shuts down before its first request
        assert not batcher.running
        with pytest.raises(BatcherStopped) as refused:
            await batcher.submit([1])
        assert str(refused.value) == "tiny is not running (call start() first; stop() is final)"

    run(scenario())


def test_a_batch_of_two_requests_reports_both() -> None:
    async def scenario() -> None:
        seen: list[BatchStats] = []
        model = FakeModel(hold=True)
        first, second = Stopwatch(), Stopwatch()
        limits = BatchLimits(max_batch_size=8, max_padding=10.0, max_wait_ms=0)
        async with MicroBatcher(model, limits, on_batch=seen.append) as batcher:
            running = asyncio.create_task(batcher.submit(["a"]))
            await model.wait_until_running()
            one = asyncio.create_task(batcher.submit(["bb", "c"], model_time=first))
            two = asyncio.create_task(batcher.submit(["ddd"], model_time=second))
            await settle()
            model.release.set()
            assert [await running, await one, await two] == [["aa"], ["bbbb", "cc"], ["dddddd"]]
        both = seen[1]
        assert (both.size, both.requests, both.tokens, both.padded_tokens) == (3, 2, 6, 9)
        assert both.served == (first, second)  # each request's trace gets the batch's span

    run(scenario())


def test_a_broken_stats_hook_is_logged_whole(caplog: pytest.LogCaptureFixture) -> None:
    def hook(stats: BatchStats) -> None:
        raise RuntimeError("metrics backend down")

    async def scenario() -> None:
        limits = BatchLimits(max_wait_ms=0)
        async with MicroBatcher(FakeModel(), limits, on_batch=hook, name="tiny") as batcher:
            assert await batcher.submit(["ab"]) == ["abab"]

    with caplog.at_level(logging.ERROR, "service.engine.batching"):
        run(scenario())
    assert [record.getMessage() for record in caplog.records] == ["tiny: on_batch hook failed"]
    exc_info = caplog.records[0].exc_info
    assert exc_info is not None and str(exc_info[1]) == "metrics backend down"


def test_a_stop_that_does_not_drain_returns_while_the_model_still_runs() -> None:
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def model(payloads: list[int]) -> list[int]:
        entered.set()
        release.wait(WAIT)
        finished.set()
        return payloads

    async def scenario() -> None:
        batcher = MicroBatcher(model, BatchLimits(max_wait_ms=0), size=lambda _: 1, name="tiny")
        batcher.start()
        running = asyncio.create_task(batcher.submit([1]))
        assert await asyncio.to_thread(entered.wait, WAIT)
        timer = threading.Timer(1.0, release.set)  # the model call ends a second later
        timer.start()
        await batcher.stop(drain=False)  # the event loop is not held until then
        returned_first = not finished.is_set()
        with pytest.raises(BatcherStopped) as stopped:
            await running
        timer.join()
        assert returned_first, "stop() waited for the model call to end"
        assert str(stopped.value) == "tiny stopped while this request ran"

    run(scenario())


def test_after_concurrent_requests_a_lone_one_waits_less_than_a_second_to_fill_its_batch() -> None:
    async def scenario() -> None:
        model = FakeModel()
        limits = BatchLimits(max_batch_size=4, max_wait_ms=900)
        async with MicroBatcher(model, limits, size=lambda _: 1) as batcher:
            assert await asyncio.gather(batcher.submit([1]), batcher.submit([2])) == [[2], [4]]
            first = asyncio.create_task(batcher.submit([3]))
            await settle()
            assert batcher.queued == 1  # waits up to 0.9 s for company, since traffic was concurrent
            rest = await asyncio.gather(*(batcher.submit([item]) for item in (4, 5, 6)))
            assert [await first, *rest] == [[6], [8], [10], [12]]
        assert model.batches[-1] == [3, 4, 5, 6]

    run(scenario())


def test_after_concurrent_requests_a_full_batch_runs_without_waiting() -> None:
    async def scenario() -> None:
        model = FakeModel()
        limits = BatchLimits(max_batch_size=2, max_wait_ms=60_000)
        async with MicroBatcher(model, limits, size=lambda _: 1) as batcher:
            assert await asyncio.gather(batcher.submit([1]), batcher.submit([2])) == [[2], [4]]
            try:
                assert await asyncio.wait_for(batcher.submit([3, 4]), 2.0) == [6, 8]
            except TimeoutError:
                pytest.fail("a batch already full waited for company")

    run(scenario())


def test_items_after_a_finished_requests_item_are_batched_in_the_same_drain() -> None:
    queue = deque([_item(2), _item(3, done=True), _item(4), _item(5)])

    plan = collate(queue, 0.0, BatchLimits(max_padding=1.0))

    assert [[item.size for item in batch] for batch in plan.batches] == [[2, 4, 5]]
    assert not queue and not plan.expired


def test_the_real_tokens_of_a_batch_cut_by_padding_start_from_nothing() -> None:
    def sizes(*lengths: int) -> list[list[int]]:
        plan = collate(deque(_item(length) for length in lengths), 0.0, BatchLimits(max_padding=0))
        return [[item.size for item in batch] for batch in plan.batches]

    # without padding every size runs alone: 2 x 6 = 12 padded tokens for the 11 real ones of 5 and 6
    assert sizes(3, 5, 6) == [[3], [5], [6]]
    assert sizes(5, 5, 6, 6) == [[5, 5], [6, 6]]


def test_every_refused_request_is_counted() -> None:
    async def scenario() -> None:
        model = FakeModel(hold=True)
        limits = BatchLimits(max_batch_size=1, max_wait_ms=0, max_queued=1)
        async with MicroBatcher(model, limits, size=lambda _: 1, name="edge-refusals") as batcher:
            running = asyncio.create_task(batcher.submit([0]))
            await model.wait_until_running()
            queued = asyncio.create_task(batcher.submit([1]))
            await settle()
            for _ in range(3):
                with pytest.raises(QueueFull):
                    await batcher.submit([2])
            assert batcher.counters.rejected_requests == 3
            model.release.set()
            assert await asyncio.gather(running, queued) == [[0], [2]]

    run(scenario())


def test_every_request_of_a_batch_is_told_the_batch_s_run_time() -> None:
    async def scenario() -> None:
        model = FakeModel(hold=True)
        limits = BatchLimits(max_batch_size=8, max_wait_ms=0)
        async with MicroBatcher(model, limits, size=lambda _: 1, name="edge-model-time") as batcher:
            first = asyncio.create_task(batcher.submit([0]))
            await model.wait_until_running()
            times = [Stopwatch() for _ in range(3)]
            rest = [
                asyncio.create_task(batcher.submit([n, n], model_time=t))
                for n, t in zip((1, 2, 3), times, strict=True)
            ]
            await settle()
            model.release.set()
            await first
            assert await asyncio.gather(*rest) == [[2, 2], [4, 4], [6, 6]]
        assert model.batches[1] == [1, 1, 2, 2, 3, 3]  # the three requests in one batch
        assert [len(recorder.calls) for recorder in times] == [1, 1, 1]
        assert times[0].calls == times[1].calls == times[2].calls
        assert times[0].calls[0][0] == 0.0 and times[0].calls[0][1] > 0

    run(scenario())


def test_an_expired_request_in_a_drain_leaves_the_others_in_it_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        model = FakeModel()
        limits = BatchLimits(max_batch_size=1, max_wait_ms=0)
        async with MicroBatcher(model, limits, size=lambda _: 1, name="edge-drain-expired") as batcher:
            late = batcher.submit(["late"], deadline=time.monotonic() - 1)
            answers = await asyncio.gather(
                late, batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True
            )
        expired, *answered = answers
        assert isinstance(expired, Expired)
        assert str(expired) == "the request's deadline passed before its batch was formed"
        assert answered == [["aa"], ["bb"]]
        assert model.batches == [["a"], ["b"]]
        assert batcher.counters.expired_requests == 1

    caplog.set_level(logging.ERROR, "service.engine.batching")
    run(scenario())
    assert caplog.records == []


def test_a_deadline_that_passes_while_the_stats_hook_runs_is_enforced_before_the_next_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The drain runs a plan's batches one after the other in one step: a request whose deadline passes
    meanwhile (here while a slow stats hook holds the event loop, so no timer can fire) is expired before
    its batch runs, and the batches after it still run."""

    def slow_hook(stats: BatchStats) -> None:
        if stats.size and not slow_hook.done:  # type: ignore[attr-defined]
            slow_hook.done = True  # type: ignore[attr-defined]
            time.sleep(0.3)

    slow_hook.done = False  # type: ignore[attr-defined]

    async def scenario() -> None:
        model = FakeModel()
        limits = BatchLimits(max_batch_size=1, max_wait_ms=0)
        async with MicroBatcher(
            model, limits, size=lambda _: 1, on_batch=slow_hook, name="edge-plan-expired"
        ) as batcher:
            answers = await asyncio.gather(
                batcher.submit(["a"]),
                batcher.submit(["late"], deadline=time.monotonic() + 0.1),
                batcher.submit(["c"]),
                return_exceptions=True,
            )
        first, expired, last = answers
        assert isinstance(expired, Expired)
        assert str(expired) == "the request's deadline passed before its batch was formed"
        assert (first, last) == (["aa"], ["cc"])
        assert model.batches == [["a"], ["c"]]  # the late one never reached the model
        assert batcher.counters.expired_requests == 1

    caplog.set_level(logging.ERROR, "service.engine.batching")
    run(scenario())
    assert caplog.records == []
