"""The per-worker bound on vector answers: 413 for an answer that could never fit, 429 with Retry-After
while others use the budget, the reservation released once the answer is sent, and streamed answers
byte for byte what one ``orjson.dumps`` gives."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from support.apps import started_app

from service.api.responses import OPTIONS
from service.api.streaming import _chunks
from service.engine.budget import BASE_COST, VectorBudget, embed_cost, hidden_states_cost
from service.errors import Overloaded, PayloadTooLarge
from service.settings import Settings
from service.units import MIB

pytestmark = pytest.mark.anyio


async def _streamed(content: dict[str, Any]) -> bytes:
    return b"".join([chunk async for chunk in _chunks(content)])


@pytest.mark.parametrize(
    "content",
    [
        {"model": "m", "version": 1, "results": [{"v": np.arange(6, dtype=np.float32).reshape(2, 3)}] * 3},
        {"model": "m", "results": []},
        {"results": [{"a": 1}, {"b": [0.1, None]}]},
    ],
)
async def test_a_streamed_answer_is_byte_for_byte_one_dumps(content: dict[str, Any]) -> None:
    assert await _streamed(content) == orjson.dumps(content, option=OPTIONS)


async def test_reservations_refuse_what_never_fits_and_release_once() -> None:
    budget = VectorBudget(limit=100, max_waiting=0)
    held = await budget.reserve(60)

    with pytest.raises(Overloaded) as busy:  # no room, no queue: refused at once
        await budget.reserve(50)
    assert busy.value.headers == {"Retry-After": "1"}
    with pytest.raises(PayloadTooLarge, match="LSTM_SERVICE_MAX_VECTOR_BYTES"):
        await budget.reserve(101)

    held.release()
    held.release()  # twice: still released once
    assert budget.in_flight == 0
    (await budget.reserve(100)).release()
    assert budget.high_water == 100


async def test_waiters_are_admitted_first_come_first_served_and_never_past_the_limit() -> None:
    budget = VectorBudget(limit=100, max_waiting=3)
    first = await budget.reserve(70)
    order: list[str] = []

    async def wait_for(name: str, cost: int) -> Any:
        reservation = await budget.reserve(cost, seconds_left=5)
        order.append(name)
        return reservation

    big = asyncio.create_task(wait_for("big", 80))  # arrived first: the small ones may not overtake it
    await asyncio.sleep(0)
    small = [asyncio.create_task(wait_for(f"small{i}", 10)) for i in range(2)]
    await asyncio.sleep(0.01)
    assert order == [] and budget.waiting == 3 and budget.in_flight == 70
    with pytest.raises(Overloaded):  # the queue is full
        await budget.reserve(1, seconds_left=5)

    first.release()
    (await big).release()
    for task in small:
        (await task).release()
    assert order == ["big", "small0", "small1"]
    assert budget.in_flight == 0 and budget.high_water <= 100


async def test_the_expected_wait_refuses_early_and_becomes_retry_after() -> None:
    budget = VectorBudget(limit=100, max_waiting=8)
    for _ in range(3):  # history: 50 bytes given back every 0.1 s (500 bytes/s)
        (await budget.reserve(50)).release()
        await asyncio.sleep(0.1)
    held = await budget.reserve(100)
    expected = budget.expected_wait(100)
    assert expected is not None and 0.05 < expected < 2

    with pytest.raises(Overloaded) as refused:  # would wait longer than the request may
        await budget.reserve(100, seconds_left=expected / 10)
    assert int(refused.value.headers["Retry-After"]) >= 1 and budget.waiting == 0
    held.release()


async def test_a_wait_that_outlasts_the_deadline_gives_up_with_429_and_leaves_no_trace() -> None:
    budget = VectorBudget(limit=100, max_waiting=8)
    held = await budget.reserve(100)
    with pytest.raises(Overloaded):
        await budget.reserve(10, seconds_left=0.05)
    assert budget.waiting == 0 and budget.in_flight == 100
    held.release()
    assert budget.in_flight == 0


async def test_a_reservation_shrinks_to_the_real_cost() -> None:
    budget = VectorBudget(limit=100)
    reservation = await budget.reserve(90)  # the bound from the texts' lengths
    reservation.shrink(30)  # the real cost, once tokenized
    assert budget.in_flight == 30
    other = await budget.reserve(70)  # fits beside it now
    reservation.release()
    other.release()
    assert budget.in_flight == 0


def test_costs_grow_with_the_answer(tiny_store: Path) -> None:
    from service.engine.loading import open_model

    runtime = open_model(tiny_store / "tiny-en" / "1")
    # padded to the longest text: one long text among short ones costs as much as all long
    assert hidden_states_cost(runtime, [1, 1, 50]) == hidden_states_cost(runtime, [50, 50, 50])
    assert hidden_states_cost(runtime, [50] * 4) > hidden_states_cost(runtime, [50] * 2)
    assert embed_cost(runtime, 100, 5) > embed_cost(runtime, 100) > embed_cost(runtime, 10)


def _body(texts: int, words: int = 40) -> dict[str, Any]:
    return {"model": "tiny-en", "texts": ["good movie " * words] * texts}


@pytest.mark.parametrize("route", ["/hidden-states", "/embed"])
async def test_routes_answer_413_when_an_answer_can_never_fit(
    start_app: Any, tiny_store: Path, route: str
) -> None:
    limit = 1 << 20  # the smallest budget allowed; 64 texts of the model's longest need more
    big: dict[str, Any] = {"model": "tiny-en", "texts": ["good movie " * 1000] * 64}
    if route == "/embed":
        big["neighbors"] = 5  # the tiny model's vectors are short (8 floats): neighbours make it larger
    settings = Settings(model_store=tiny_store, max_vector_bytes=limit, max_vector_texts=64)
    async with started_app(settings) as (app, client):
        response = await client.post(route, json=big)
        small = await client.post(route, json=_body(1, 5))
        budget = app.state.services.engine.budget

    assert response.status_code == 413, response.text[:300]
    assert response.json()["error_type"] == "payload_too_large"
    assert "LSTM_SERVICE_MAX_VECTOR_BYTES" in response.json()["error"]
    assert small.status_code == 200, small.text[:300]
    assert budget.in_flight == 0


@pytest.mark.parametrize("route", ["/hidden-states", "/embed"])
async def test_routes_answer_429_with_retry_after_while_the_budget_is_in_use(
    start_app: Any, tiny_store: Path, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.tokenizer import Tokenizer

    limit = 8 << 20
    tokenized: list[str] = []
    encode = Tokenizer.encode
    monkeypatch.setattr(Tokenizer, "encode", lambda self, text: tokenized.append(text) or encode(self, text))
    settings = Settings(model_store=tiny_store, max_vector_bytes=limit, max_vector_waiting=0)
    async with started_app(settings) as (app, client):
        budget = app.state.services.engine.budget
        held = await budget.reserve(limit - 1000)  # another request building a large answer
        tokenized.clear()  # the golden examples, verified at start-up
        try:
            busy = await client.post(route, json=_body(2))
        finally:
            held.release()
        refused_before_tokenizing = not tokenized
        after = await client.post(route, json=_body(2))

    assert busy.status_code == 429, busy.text[:300]
    assert busy.headers["Retry-After"] == "1" and busy.json()["error_type"] == "overloaded"
    assert refused_before_tokenizing  # a refusal costs no tokenizing
    assert after.status_code == 200, after.text[:300]
    assert budget.in_flight == 0  # released once the body was sent


async def test_the_refusal_before_the_body_is_the_one_reserve_would_make_for_any_request() -> None:
    budget = VectorBudget(limit=10 * MIB, max_waiting=1)
    budget.refuse_if_full()  # empty: admitted
    held = await budget.reserve(6 * MIB)
    budget.refuse_if_full()  # the smallest answer still fits and nobody waits
    big = asyncio.create_task(budget.reserve(5 * MIB, seconds_left=5))
    while budget.waiting == 0:
        await asyncio.sleep(0)
    with pytest.raises(Overloaded):  # the smallest answer would fit, but it may not overtake the waiter
        budget.refuse_if_full()
    with pytest.raises(Overloaded):
        await budget.reserve(BASE_COST)  # the same decision after the body
    held.release()
    (await big).release()

    unqueued = VectorBudget(limit=10 * MIB, max_waiting=0)
    held = await unqueued.reserve(10 * MIB - BASE_COST)
    unqueued.refuse_if_full()  # exactly the smallest answer's room is left: not refused
    (await unqueued.reserve(BASE_COST)).release()
    held.release()
    held = await unqueued.reserve(10 * MIB - BASE_COST + 1)
    with pytest.raises(Overloaded):
        unqueued.refuse_if_full()
    held.release()


def _asgi_post(route: str, declared: int) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": route, "raw_path": route.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(declared).encode())],
    }  # fmt: skip


@pytest.mark.parametrize("route", ["/hidden-states", "/embed"])
async def test_with_the_waiters_queue_full_a_request_is_refused_without_parsing_its_body(
    tiny_store: Path, route: str
) -> None:
    limit = 8 << 20
    settings = Settings(model_store=tiny_store, max_vector_bytes=limit, max_vector_waiting=1)
    async with started_app(settings) as (app, client):
        budget = app.state.services.engine.budget
        held = await budget.reserve(limit - 1000)  # another request building a large answer
        queued = asyncio.create_task(client.post(route, json=_body(2)))  # waits: the queue is now full
        while budget.waiting == 0:
            await asyncio.sleep(0.01)
        answers: dict[str, list[dict[str, Any]]] = {}
        unread: dict[str, int] = {}
        # A body in three chunks that is not JSON at all (parsed, it would be a 422), and a client that
        # leaves half-way through its body.
        for case, chunks in {"whole": [b"{not json", b" " * 65536, b"}"], "left": [b"{", None]}.items():
            pending: list[bytes | None] = list(chunks)
            sent: list[dict[str, Any]] = []

            async def receive(pending: list[bytes | None] = pending) -> dict[str, Any]:
                chunk = pending.pop(0)
                if chunk is None:
                    return {"type": "http.disconnect"}
                return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

            async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
                sent.append(message)

            await app(_asgi_post(route, 65538), receive, send)
            answers[case], unread[case] = sent, len(pending)
        still_waiting = budget.waiting
        held.release()
        admitted = await queued
        other_route = "/embed" if route == "/hidden-states" else "/hidden-states"
        after = await client.post(other_route, json=_body(2))

    for case, sent in answers.items():
        headers = {name.decode().lower(): value.decode() for name, value in sent[0]["headers"]}
        assert sent[0]["status"] == 429, (case, sent)
        assert orjson.loads(sent[1]["body"])["error_type"] == "overloaded"
        assert int(headers["retry-after"]) >= 1
        assert unread[case] == 0  # the body was read to its end (and dropped) before the answer
        # The connection is kept for the client's next request when the body ended, closed when not.
        assert headers.get("connection") == (None if case == "whole" else "close"), (case, headers)
    assert still_waiting == 1  # the refused requests never joined the queue
    assert admitted.status_code == 200 and after.status_code == 200, (admitted.text[:200], after.text[:200])
    assert budget.in_flight == 0 and budget.waiting == 0


async def test_a_request_waits_for_the_budget_instead_of_being_refused(tiny_store: Path) -> None:
    limit = 8 << 20
    async with started_app(Settings(model_store=tiny_store, max_vector_bytes=limit)) as (app, client):
        budget = app.state.services.engine.budget
        held = await budget.reserve(limit - 1000)
        waiting = asyncio.create_task(client.post("/hidden-states", json=_body(2)))
        while budget.waiting == 0:
            await asyncio.sleep(0.01)
        held.release()
        answer = await waiting

    assert answer.status_code == 200, answer.text[:300]
    assert budget.in_flight == 0 and budget.high_water <= limit


async def test_the_streamed_answer_is_the_documented_json(start_app: Any, tiny_store: Path) -> None:
    async with start_app(Settings(model_store=tiny_store)) as client:
        response = await client.post("/hidden-states", json=_body(2, 3))

    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["model"] == "tiny-en" and len(body["results"]) == 2
    assert len(body["results"][0]["hidden_states"]) == len(body["results"][0]["tokens"])


def test_the_neighbour_search_in_chunks_equals_one_token_at_a_time(tiny_store: Path) -> None:
    from service.engine.loading import open_model
    from service.engine.runtime import NEIGHBOR_CHUNK

    runtime = open_model(tiny_store / "tiny-en" / "1")
    ids = [index % runtime.tokenizer.vocab_size for index in range(2, 2 + 2 * NEIGHBOR_CHUNK + 5)]

    chunked = runtime.neighbors(ids, 3)
    alone = [runtime.neighbors([token_id], 3) for token_id in ids]

    assert chunked.ids.shape == (len(ids), 3)
    assert np.array_equal(chunked.ids, np.concatenate([one.ids for one in alone]))
    assert np.allclose(chunked.similarities, np.concatenate([one.similarities for one in alone]))


async def test_embed_with_many_neighbours_costs_what_it_holds(tiny_store: Path) -> None:
    from service.engine.loading import open_model

    runtime = open_model(tiny_store / "tiny-en" / "1")
    assert embed_cost(runtime, 600, 100) - embed_cost(runtime, 600) >= 600 * 100 * 400


async def test_oip_hidden_states_are_built_within_the_same_budget(start_app: Any, tiny_store: Path) -> None:
    limit = 1 << 20
    texts = ["good movie " * 1000] * 64

    def infer(outputs: list[str]) -> dict[str, Any]:
        return {
            "inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [len(texts)], "data": texts}],
            "outputs": [{"name": name} for name in outputs],
        }

    settings = Settings(model_store=tiny_store, max_vector_bytes=limit, max_texts=64)
    async with started_app(settings) as (app, client):
        hidden = await client.post("/v2/models/tiny-en/infer", json=infer(["HIDDEN_STATES"]))
        probs = await client.post("/v2/models/tiny-en/infer", json=infer(["PROBS"]))
        budget = app.state.services.engine.budget

    assert hidden.status_code == 413, hidden.text[:300]
    assert hidden.json()["error_type"] == "payload_too_large"
    assert probs.status_code == 200, probs.text[:300]  # scores alone need no vector budget
    assert budget.in_flight == 0
