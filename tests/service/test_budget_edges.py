"""The vector budget at its edges: what an answer costs to the byte (413 one byte over the budget, and the
refusal's figures), ``Retry-After`` as the expected wait at the rate bytes were given back over the last
minute, a refusal at once when that wait reaches the request's deadline, waiters admitted in order and only
when they fit, and the bytes a request gives back when it leaves just as it is admitted.

The budget's clock is a fake one where the rate matters (``clock``), so every expected wait is exact; the
waits themselves run on the real event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from support.apps import started_app

import service.engine.budget as budget_module
from service.engine.budget import VectorBudget
from service.errors import Overloaded
from service.settings import Settings
from service.units import MIB

pytestmark = pytest.mark.anyio

# The tiny-en model (tests/fixtures/store): 8-float embeddings, 16 floats of hidden state per token (8 units
# each way), 55 vocabulary entries, texts cut to 64 tokens. "good movie " * 40 is cut to 64 tokens.
LONG_TEXT = "good movie " * 40
BASE = 256 * 1024  # per request, whatever its size
EMBED_PER_TOKEN = 8 * 24  # 8 floats of 24 bytes
NEIGHBOR = 400  # per neighbour of a token
SEARCH = 16 * 55 * 12  # the neighbour search: 16 tokens at a time, 12 bytes per vocabulary entry


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(budget_module, "time", clock)
    return clock


async def _given_back(budget: VectorBudget, clock: _Clock, releases: list[tuple[float, int]]) -> None:
    """Answers of these sizes finished at these times (seconds after the clock's start)."""
    start = clock.now
    for at, size in releases:
        clock.now = start + at
        (await budget.reserve(size)).release()


async def _refused(budget: VectorBudget, cost: int, seconds_left: float | None = None) -> Overloaded:
    with pytest.raises(Overloaded) as refused:
        await budget.reserve(cost, seconds_left)
    return refused.value


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# --- what an answer costs, as the client sees it ---


@pytest.mark.parametrize(
    ("route", "texts", "extra", "message"),
    [
        (
            "/hidden-states",
            64,
            {},
            # 64 texts x 64 tokens x 16 floats x 32 bytes + 256 KiB = 2.25 MiB
            "this answer would take about 2 MiB to build, more than this server allows for one answer "
            "(1 MiB, LSTM_SERVICE_MAX_VECTOR_BYTES); send fewer or shorter texts",
        ),
        (
            "/embed",
            256,
            {},
            # 256 texts x 64 tokens x 8 floats x 24 bytes + 256 KiB = 3.25 MiB
            "this answer would take about 3 MiB to build, more than this server allows for one answer "
            "(1 MiB, LSTM_SERVICE_MAX_VECTOR_BYTES); send fewer or shorter texts",
        ),
    ],
    ids=["hidden-states", "embed"],
)
async def test_the_413_names_the_answers_size_and_the_budget(
    tiny_store: Path, route: str, texts: int, extra: dict[str, Any], message: str
) -> None:
    settings = Settings(model_store=tiny_store, max_vector_bytes=MIB, max_vector_texts=texts)
    async with started_app(settings) as (_, client):
        refused = await client.post(route, json={"model": "tiny-en", "texts": [LONG_TEXT] * texts, **extra})

    assert refused.status_code == 413, refused.text[:300]
    assert refused.json() == {"error": message, "error_type": "payload_too_large"}


async def test_an_embed_answer_fits_a_budget_of_exactly_its_size_and_not_one_byte_less(
    tiny_store: Path,
) -> None:
    body = {"model": "tiny-en", "texts": [LONG_TEXT] * 64, "neighbors": 1}
    cost = BASE + 64 * 64 * (EMBED_PER_TOKEN + NEIGHBOR) + SEARCH  # 2,697,536 bytes
    answers = []
    for limit in (cost, cost - 1):
        settings = Settings(model_store=tiny_store, max_vector_bytes=limit, max_vector_texts=64)
        async with started_app(settings) as (app, client):
            answers.append(await client.post("/embed", json=body))
            assert app.state.services.engine.budget.in_flight == 0

    fits, refused = answers
    assert fits.status_code == 200, fits.text[:300]
    assert sum(len(result["tokens"]) for result in fits.json()["results"]) == 64 * 64
    assert refused.status_code == 413, refused.text[:300]
    assert refused.json()["error"].startswith("this answer would take about 3 MiB to build, ")


async def test_the_429_names_the_budget_in_use_and_the_wait(tiny_store: Path) -> None:
    limit = 8 * MIB
    settings = Settings(model_store=tiny_store, max_vector_bytes=limit, max_vector_waiting=0)
    async with started_app(settings) as (app, client):
        budget = app.state.services.engine.budget
        held = await budget.reserve(limit - 1000)  # another request building a large answer
        try:
            busy = await client.post("/hidden-states", json={"model": "tiny-en", "texts": [LONG_TEXT] * 2})
        finally:
            held.release()

    assert busy.status_code == 429, busy.text[:300]
    assert busy.headers["Retry-After"] == "1"
    assert busy.json() == {
        "error": "the server is building other large answers (8 of 8 MiB in use, 0 waiting); retry in 1 s",
        "error_type": "overloaded",
    }


# --- Retry-After: the expected wait at the rate of the last minute ---


@pytest.mark.parametrize(
    ("releases", "limit", "cost", "retry_after"),
    [
        ([(0, 500), (10, 500)], 1000, 600, "6"),  # 1000 bytes in 10 s: 600 more take 6 s
        ([(0, 250), (10, 250), (11, 250), (20, 250)], 1000, 600, "12"),  # the first to the last: 20 s
        ([(0, 500), (0.5, 500)], 10_000, 9000, "5"),  # 2000 bytes per second: 4.5 s
        ([(0, 500)], 1000, 600, "1"),  # one answer given back: no rate yet
    ],
    ids=["two", "four-uneven", "under-a-second", "one"],
)
async def test_retry_after_is_the_expected_wait_at_the_rate_bytes_were_given_back(
    clock: _Clock, releases: list[tuple[float, int]], limit: int, cost: int, retry_after: str
) -> None:
    budget = VectorBudget(limit=limit, max_waiting=0)
    await _given_back(budget, clock, releases)
    held = await budget.reserve(limit)

    refused = await _refused(budget, cost)

    assert refused.headers == {"Retry-After": retry_after}
    assert refused.message.endswith(f"retry in {retry_after} s")
    held.release()
    assert budget.in_flight == 0


async def test_retry_after_counts_the_bytes_the_waiters_before_it_need(clock: _Clock) -> None:
    budget = VectorBudget(limit=1000, max_waiting=1)
    await _given_back(budget, clock, [(0, 500), (10, 500)])  # 100 bytes per second
    held = await budget.reserve(1000)
    waiter = asyncio.create_task(budget.reserve(400))
    await _settle()

    refused = await _refused(budget, 600)  # the queue is full

    assert refused.headers == {"Retry-After": "10"}  # 1000 held + 400 waiting + 600 - 1000, at 100/s
    held.release()
    (await waiter).release()
    assert budget.in_flight == 0


async def test_a_release_exactly_a_minute_old_still_counts_and_an_older_one_does_not(clock: _Clock) -> None:
    budget = VectorBudget(limit=1000, max_waiting=0)
    await _given_back(budget, clock, [(0, 500), (10, 500)])
    held = await budget.reserve(1000)

    clock.now += 50  # the first release is now exactly 60 s old
    at_a_minute = await _refused(budget, 600)
    clock.now += 0.5
    past_a_minute = await _refused(budget, 600)

    assert at_a_minute.headers == {"Retry-After": "6"}
    assert past_a_minute.headers == {"Retry-After": "1"}  # one release left: no rate
    held.release()


async def test_a_shrunk_reservation_is_not_a_finished_answer(clock: _Clock) -> None:
    budget = VectorBudget(limit=1000, max_waiting=0)
    reservation = await budget.reserve(1000)
    reservation.shrink(500)  # the real cost, once tokenized: not an answer given back
    clock.now += 10
    reservation.release()
    held = await budget.reserve(1000)

    refused = await _refused(budget, 600)

    assert refused.headers == {"Retry-After": "1"}  # one finished answer: no rate to go by
    held.release()


async def test_a_reservation_never_grows_by_shrinking_nor_gives_back_twice() -> None:
    budget = VectorBudget(limit=1000)
    done = await budget.reserve(600)
    done.release()
    done.shrink(100)  # after its release: nothing more to give back
    assert budget.in_flight == 0

    held = await budget.reserve(300)
    held.shrink(900)  # a finer estimate above the reservation: the reservation stays as it was
    assert budget.in_flight == 300
    held.release()
    assert budget.in_flight == 0


# --- refused at once when the wait would reach the deadline ---


async def test_a_request_whose_expected_wait_reaches_its_deadline_is_refused_at_once(clock: _Clock) -> None:
    budget = VectorBudget(limit=1000, max_waiting=8)
    await _given_back(budget, clock, [(0, 500), (10, 500)])  # 100 bytes per second
    held = await budget.reserve(1000)

    exactly = asyncio.create_task(budget.reserve(600, seconds_left=6.0))  # expects to wait 6 s
    await _settle()
    assert exactly.done() and budget.waiting == 0  # refused without taking a place in the queue
    with pytest.raises(Overloaded) as refused:
        await exactly
    assert refused.value.headers == {"Retry-After": "6"}

    longer = asyncio.create_task(budget.reserve(600, seconds_left=6.5))  # may wait long enough: waits
    await _settle()
    assert not longer.done() and budget.waiting == 1
    held.release()
    (await longer).release()
    assert budget.in_flight == 0 and budget.waiting == 0


async def test_a_wait_that_times_out_answers_the_wait_expected_then(clock: _Clock) -> None:
    budget = VectorBudget(limit=1000, max_waiting=8)
    await _given_back(budget, clock, [(0, 500)])  # one release: no rate yet, so no early refusal
    first, second = await budget.reserve(500), await budget.reserve(500)
    waiting = asyncio.create_task(budget.reserve(900, seconds_left=1.0))
    await _settle()
    clock.now += 10
    first.release()  # 1000 bytes in 10 s; 500 still held, so the 900 still wait

    with pytest.raises(Overloaded) as refused:
        await waiting

    assert refused.value.headers == {"Retry-After": "4"}  # 500 + 900 - 1000 bytes at 100/s
    assert budget.waiting == 0 and budget.in_flight == 500
    second.release()
    assert budget.in_flight == 0


# --- the queue ---


async def test_a_waiter_is_admitted_only_once_it_fits(clock: _Clock) -> None:
    budget = VectorBudget(limit=100, max_waiting=8)
    first, second = await budget.reserve(60), await budget.reserve(40)
    waiting = asyncio.create_task(budget.reserve(70, seconds_left=5))
    await _settle()

    first.release()  # 40 held: 70 more do not fit
    await _settle()
    assert not waiting.done() and budget.waiting == 1 and budget.in_flight == 40

    second.release()
    reservation = await waiting
    assert budget.in_flight == 70 and budget.high_water == 100
    reservation.release()


async def test_a_waiter_that_needs_the_whole_budget_is_admitted_when_it_is_free() -> None:
    budget = VectorBudget(limit=100, max_waiting=8)
    held = await budget.reserve(100)
    waiting = asyncio.create_task(budget.reserve(100, seconds_left=2))
    await _settle()

    held.release()

    (await asyncio.wait_for(waiting, 5)).release()
    assert budget.in_flight == 0


async def test_a_waiter_that_gives_up_frees_nothing_for_those_behind_it() -> None:
    budget = VectorBudget(limit=100, max_waiting=8)
    held = await budget.reserve(100)
    patient = asyncio.create_task(budget.reserve(50, seconds_left=5))
    await _settle()
    with pytest.raises(Overloaded):
        await budget.reserve(60, seconds_left=0.05)  # behind the patient one; gives up

    assert not patient.done() and budget.waiting == 1 and budget.in_flight == 100
    held.release()
    (await patient).release()
    assert budget.in_flight == 0 and budget.high_water == 100


async def test_a_request_admitted_as_its_client_leaves_gives_the_bytes_back(clock: _Clock) -> None:
    budget = VectorBudget(limit=1000, max_waiting=8)
    held = await budget.reserve(1000)
    waiting = asyncio.create_task(budget.reserve(1000))
    await _settle()

    held.release()  # admits the waiter...
    waiting.cancel()  # ...whose client leaves before it runs again
    clock.now += 10
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert budget.in_flight == 0 and budget.waiting == 0
    # bytes never used are not an answer given back: one finished answer so far, so no rate, and a
    # request that would have to wait is queued rather than refused as late
    other = await budget.reserve(1000)
    late = await _refused(budget, 600, seconds_left=0.01)
    assert late.headers == {"Retry-After": "1"}
    other.release()
    assert budget.in_flight == 0
