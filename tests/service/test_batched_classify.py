"""/classify through the micro-batcher: concurrent requests share model calls, yet every text gets exactly
the scores it gets alone, in order, complete; a full queue answers 429 with Retry-After at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.api.app import create_app
from service.settings import Settings

pytestmark = pytest.mark.anyio

TEXTS = [
    "the striker scored a goal",
    "soup",
    "a new phone with a fast chip and a bright screen was shown today by the company",
    "the chef cooked pasta and the team won",
    "goal",
    "bread cheese and wine for dinner tonight at the small restaurant near the stadium",
]


async def _scores_alone(client: httpx.AsyncClient) -> dict[str, dict[str, float]]:
    alone = {}
    for text in TEXTS:
        response = await client.post("/classify", json={"text": text})
        assert response.status_code == 200
        alone[text] = response.json()["results"][0]["scores"]
    return alone


async def test_concurrent_requests_get_the_scores_they_get_alone(tiny_store: Path) -> None:
    app = create_app(Settings(model_store=tiny_store, max_batch_size=4, max_wait_ms=20))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            alone = await _scores_alone(client)
            # 40 requests at once, each with a rotated list of texts: batches mix requests and lengths,
            # and a request's texts are split across batches.
            bodies = [{"texts": TEXTS[i % 6 :] + TEXTS[: i % 6]} for i in range(40)]
            responses = await asyncio.gather(*(client.post("/classify", json=body) for body in bodies))
            batches = app.state.services.engine.inference._batchers[("tiny-en", 1)][1].counters

    assert [response.status_code for response in responses] == [200] * 40
    for body, response in zip(bodies, responses, strict=True):
        results = response.json()["results"]
        assert len(results) == len(body["texts"])
        for text, result in zip(body["texts"], results, strict=True):
            assert result["scores"] == alone[text]  # identical, not approximately equal
    assert batches.items == 40 * len(TEXTS) + len(TEXTS)
    assert batches.batches < batches.items  # texts really shared model calls


async def test_batching_off_gives_the_same_scores(tiny_store: Path, start_app) -> None:
    async with start_app(Settings(model_store=tiny_store)) as client:
        batched = await _scores_alone(client)
    async with start_app(Settings(model_store=tiny_store, batching=False)) as client:
        unbatched = await _scores_alone(client)
        responses = await asyncio.gather(*(client.post("/classify", json={"texts": TEXTS}) for _ in range(8)))
    assert batched == unbatched
    for response in responses:
        assert [result["scores"] for result in response.json()["results"]] == [batched[t] for t in TEXTS]


async def test_a_full_queue_answers_429_with_retry_after(tiny_store: Path, start_app) -> None:
    settings = Settings(model_store=tiny_store, max_queued=8, max_batch_size=1)
    async with start_app(settings) as client:
        responses = await asyncio.gather(
            *(client.post("/classify", json={"texts": TEXTS}) for _ in range(30))
        )
        statuses = [response.status_code for response in responses]
        after = await client.post("/classify", json={"text": "goal"})

    assert set(statuses) <= {200, 429}
    assert 429 in statuses and 200 in statuses
    refused = next(response for response in responses if response.status_code == 429)
    assert refused.json()["error_type"] == "overloaded"
    assert int(refused.headers["retry-after"]) >= 1
    assert after.status_code == 200  # the queue drained and the server kept serving
