"""A vector answer whose build fails after its reservation gives the reservation back: the budget does not
shrink for good, so a request that needs most of it is still answered after the failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.apps import started_app

from service.engine.budget import hidden_states_cost
from service.engine.runtime import ModelRuntime
from service.settings import Settings

pytestmark = pytest.mark.anyio
LIMIT = 1 << 20  # the smallest budget allowed


async def _fits_after(client: Any, budget: Any, runtime: ModelRuntime) -> None:
    """A request costing most of the budget is answered (with no waiting allowed, a leak would be a 429)."""
    longest = runtime.tokenizer.max_length
    big = {"model": "tiny-en", "texts": ["good movie " * longest] * 16}  # cut to the longest each
    assert LIMIT // 2 < hidden_states_cost(runtime, [longest] * 16) <= LIMIT  # two never fit at once
    answer = await client.post("/hidden-states", json=big)
    assert answer.status_code == 200, answer.text[:300]
    assert budget.in_flight == 0


@pytest.mark.parametrize(
    ("route", "body", "fragment"),
    [
        ("/hidden-states", {"texts": ["good movie", "   "]}, "texts.1: no tokens"),
        ("/hidden-states", {"texts": ["good", "good " * 300], "truncate": False}, 'send \\"truncate\\"'),
        ("/embed", {"texts": ["good", "good " * 300], "truncate": False}, 'send \\"truncate\\"'),
    ],
    ids=["no-tokens", "hidden-too-long", "embed-too-long"],
)
async def test_a_text_refused_after_the_reservation_gives_it_back(
    tiny_store: Path, route: str, body: dict[str, Any], fragment: str
) -> None:
    settings = Settings(model_store=tiny_store, max_vector_bytes=LIMIT, max_vector_waiting=0)
    async with started_app(settings) as (app, client):
        budget = app.state.services.engine.budget
        runtime = await app.state.services.engine.model("tiny-en", None)
        for _ in range(3):  # a leak would add up
            refused = await client.post(route, json={"model": "tiny-en", **body})
            assert refused.status_code == 422 and fragment in refused.text, refused.text[:300]
        assert budget.in_flight == 0
        await _fits_after(client, budget, runtime)


async def test_a_run_that_fails_in_the_pool_gives_the_reservation_back(
    tiny_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(model_store=tiny_store, max_vector_bytes=LIMIT, max_vector_waiting=0)
    async with started_app(settings) as (app, client):
        budget = app.state.services.engine.budget
        runtime = await app.state.services.engine.model("tiny-en", None)
        real = ModelRuntime.hidden_states

        def failing(self: ModelRuntime, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("onnxruntime: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION")  # as a failed run

        monkeypatch.setattr(ModelRuntime, "hidden_states", failing)
        for _ in range(3):
            failed = await client.post("/hidden-states", json={"model": "tiny-en", "texts": ["good movie"]})
            assert failed.status_code == 500, failed.text[:300]
        assert budget.in_flight == 0
        monkeypatch.setattr(ModelRuntime, "hidden_states", real)
        await _fits_after(client, budget, runtime)
