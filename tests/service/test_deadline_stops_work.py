"""Work past its request's deadline stops, and what it holds is freed only once it has really stopped:
the pool thread is asked to stop at the 504 (between chunks, or onnxruntime ends its run), and the
``stopped`` callback (which gives back a vector budget reservation) runs when the thread lets go."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from service.engine.inference import Inference
from service.engine.loading import open_model
from service.engine.runtime import Stop, Stopped
from service.errors import DeadlineExceeded
from service.observability.context import DEADLINE

pytestmark = pytest.mark.anyio


async def test_a_504_asks_the_work_to_stop_and_frees_its_hold_only_when_it_has() -> None:
    inference = Inference(threads=1)
    stop = Stop()
    checks: list[float] = []
    freed: list[float] = []
    thread_done = threading.Event()

    def slow_in_chunks(stop: Stop) -> str:
        try:
            for _ in range(200):  # 200 chunks of 10 ms: 2 s if nobody asks it to stop
                checks.append(time.monotonic())
                stop.check()
                time.sleep(0.01)
            return "finished"
        finally:
            thread_done.set()

    DEADLINE.set(time.monotonic() + 0.1)
    started = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded):
            await inference.run(
                slow_in_chunks, stop, stop=stop, stopped=lambda: freed.append(time.monotonic())
            )
        answered = time.monotonic()
        assert stop.requested and freed == []  # the 504 is out, the thread may still hold its work
        while not thread_done.is_set():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the done callback runs on the loop
    finally:
        DEADLINE.set(None)
        inference.close()
    assert len(freed) == 1 and freed[0] >= answered
    assert checks[-1] - started < 1.0  # it stopped at its next check, far from its 2 s
    assert len(checks) < 100


async def test_work_that_finishes_in_time_frees_nothing_early() -> None:
    inference = Inference(threads=1)
    freed: list[str] = []
    try:
        result = await inference.run(lambda: 42, stop=Stop(), stopped=lambda: freed.append("x"))
    finally:
        inference.close()
    assert result == 42 and freed == []  # the caller keeps its hold until its answer is sent


async def test_a_request_already_past_its_deadline_frees_at_once() -> None:
    inference = Inference(threads=1)
    freed: list[str] = []
    DEADLINE.set(time.monotonic() - 1)
    try:
        with pytest.raises(DeadlineExceeded):
            await inference.run(lambda: 42, stopped=lambda: freed.append("x"))
    finally:
        DEADLINE.set(None)
        inference.close()
    assert freed == ["x"]


def test_the_neighbour_search_and_onnxruntime_stop_when_asked(tiny_store: Path) -> None:
    runtime = open_model(tiny_store / "tiny-en" / "1")
    ids = [index % runtime.tokenizer.vocab_size for index in range(2, 60)]
    stop = Stop()
    assert runtime.neighbors(ids, 3, stop).ids.shape == (len(ids), 3)  # not asked: runs through
    stop.request()
    with pytest.raises(Stopped):
        runtime.neighbors(ids, 3, stop)
    with pytest.raises(Stopped):  # onnxruntime's terminate flag ends the run
        runtime.hidden_states([ids, ids[:5]], stop)


def test_each_distinct_token_is_searched_once_and_answered_in_place(tiny_store: Path) -> None:
    runtime = open_model(tiny_store / "tiny-en" / "1")
    ids = [5, 7, 5, 5, 9, 7]
    together = runtime.neighbors(ids, 4)
    for position, token_id in enumerate(ids):
        alone = runtime.neighbors([token_id], 4)
        assert np.array_equal(together.ids[position], alone.ids[0])
        assert np.allclose(together.similarities[position], alone.similarities[0])
