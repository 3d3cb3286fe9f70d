"""The engine's verbs as the routes reach them: a failed batch is an error of the vocabulary, vector work
leaves the event loop, every protocol's classification is recorded in the statistics, and the vector
routes document the 429 their budget answers."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.apps import started_app

from service.api.app import create_app
from service.engine.runtime import ModelRuntime
from service.errors import INTERNAL_MESSAGE
from service.settings import Settings

pytestmark = pytest.mark.anyio


async def test_a_failed_batch_is_answered_500_with_the_standard_body_and_logged_once(
    tiny_store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with started_app(Settings(model_store=tiny_store)) as (app, client):
        runtime = app.state.services.registry.get("tiny-en")

        def broken(id_lists: Any) -> np.ndarray:
            raise RuntimeError("the graph failed on this batch")

        runtime.logits = broken  # type: ignore[method-assign]
        with caplog.at_level(logging.ERROR):
            answers = [
                await client.post("/classify", json={"text": "good movie", "model": "tiny-en"}),
                await client.post(
                    "/v2/models/tiny-en/infer",
                    json={"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": ["good"]}]},
                ),
            ]
        working = await client.post("/classify", json={"text": "很好", "model": "tiny-zh"})

    for answer in answers:
        assert answer.status_code == 500, answer.text
        assert answer.json() == {"error": INTERNAL_MESSAGE, "error_type": "internal"}
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(failures) == 2  # once per failed batch, by the batcher; not again by the error handler
    assert all("failed" in record.getMessage() for record in failures)
    assert working.status_code == 200  # another model's batcher is untouched


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/embed", {"texts": ["good movie", "bad film"], "model": "tiny-en", "neighbors": 3}),
        ("/embed", {"tokens": ["good", "movie"], "model": "tiny-en"}),
        ("/hidden-states", {"texts": ["good movie", "bad"], "model": "tiny-en"}),
    ],
)
async def test_vector_work_runs_in_the_inference_pool_not_on_the_event_loop(
    tiny_store: Path, monkeypatch: pytest.MonkeyPatch, route: str, body: dict[str, Any]
) -> None:
    threads: list[str] = []
    for method in ("embeddings", "neighbors", "hidden_states"):
        original = getattr(ModelRuntime, method)

        def recorded(self: ModelRuntime, *args: Any, _original: Any = original) -> Any:
            threads.append(threading.current_thread().name)
            return _original(self, *args)

        monkeypatch.setattr(ModelRuntime, method, recorded)
    async with started_app(Settings(model_store=tiny_store)) as (_, client):
        answer = await client.post(route, json=body)

    assert answer.status_code == 200, answer.text
    assert threads and all(name.startswith("inference") for name in threads), threads


async def test_every_protocol_s_classification_is_counted_in_the_statistics(tiny_store: Path) -> None:
    text = {
        "inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": ["good"]}],
        "outputs": [{"name": "PROBS"}],
    }
    async with started_app(Settings(model_store=tiny_store, default_model="tiny-en")) as (_, client):
        await client.post("/classify", json={"texts": ["good", "bad"], "model": "tiny-en"})
        await client.post("/v2/models/tiny-en/infer", json=text)
        await client.post("/predict", json={"inputs": "good"})
        await client.post("/classify", json={"text": "x" * 30_000, "model": "tiny-en"})  # refused early
        stats = (await client.get("/v2/models/tiny-en/stats")).json()["model_stats"][0]

    assert stats["inference_stats"]["success"]["count"] == 3
    assert stats["inference_count"] == 4  # texts the model computed


def test_the_vector_routes_document_the_429_of_their_budget(tiny_store: Path) -> None:
    paths = create_app(Settings(model_store=tiny_store)).openapi()["paths"]
    for route in ("/embed", "/hidden-states"):
        responses = paths[route]["post"]["responses"]
        assert "429" in responses and "413" in responses, route
