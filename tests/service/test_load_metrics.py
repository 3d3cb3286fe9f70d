"""The metrics to autoscale on: queued texts per model, the vector budget in use and its waiters, requests
per model, build info; with ``--workers 2`` every worker's (and the supervisor's) process metrics."""

from __future__ import annotations

import asyncio
import platform
import time
from pathlib import Path

import httpx
import pytest
from support.apps import parse_metrics, series, started_app
from support.live_server import LiveServer

from service import __version__
from service.engine.budget import VectorBudget
from service.observability.load_metrics import LoadSampler
from service.settings import Settings
from service.units import MIB

LIMIT = 4 * MIB


async def _scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    return parse_metrics(answer.text)


@pytest.mark.anyio
async def test_requests_per_model_build_info_and_the_budget(tiny_store: Path) -> None:
    settings = Settings(model_store=tiny_store, max_vector_bytes=LIMIT, max_vector_waiting=4)
    async with started_app(settings) as (app, client):
        before = await _scrape(client)  # counters are per process: other tests' requests are counted too
        for model in ("tiny-en", "tiny-en", "tiny-zh"):
            assert (await client.post("/classify", json={"text": "goal", "model": model})).status_code == 200
        assert (await client.post("/embed", json={"tokens": ["goal"], "model": "tiny-zh"})).status_code == 200
        assert (await client.post("/classify", json={"text": "goal", "model": "nope"})).status_code == 404
        idle = await _scrape(client)

        budget = app.state.services.engine.budget
        held = await budget.reserve(3 * MIB)
        waiter = asyncio.create_task(budget.reserve(2 * MIB, 30))
        while budget.waiting == 0:
            await asyncio.sleep(0.01)
        busy = await _scrape(client)
        held.release()
        (await waiter).release()
        after = await _scrape(client)

    def added(name: str, **labels: str) -> float:
        key = series(name, **labels)
        return idle[key] - before.get(key, 0.0)

    model_requests = "lstm_service_model_requests_total"
    assert added(model_requests, model="tiny-en", route="/classify", status="200") == 2
    assert added(model_requests, model="tiny-zh", route="/classify", status="200") == 1
    assert added(model_requests, model="tiny-zh", route="/embed", status="200") == 1
    assert not [key for key in idle if key[0] == model_requests and ("model", "nope") in key[1]]
    assert added("lstm_service_model_request_duration_seconds_count", model="tiny-en", route="/classify") == 2
    build = [key for key in idle if key[0] == "lstm_service_build_info"]
    assert len(build) == 1 and idle[build[0]] == 1
    assert {("version", __version__), ("python", platform.python_version())} <= build[0][1]

    for model in ("tiny-en", "tiny-zh"):  # every served model has a series, 0 while nothing waits
        assert idle[series("lstm_service_model_queued_texts", model=model)] == 0
    assert idle[series("lstm_service_vector_budget_bytes")] == LIMIT
    assert idle[series("lstm_service_vector_budget_bytes_in_use")] == 0
    assert busy[series("lstm_service_vector_budget_bytes_in_use")] == 3 * MIB
    assert busy[series("lstm_service_vector_requests_waiting")] == 1
    assert after[series("lstm_service_vector_budget_bytes_in_use")] == 0
    assert after[series("lstm_service_vector_requests_waiting")] == 0


def test_the_sampler_reports_each_models_queue_and_zero_once_it_empties() -> None:
    from prometheus_client import REGISTRY

    queued = {"model-a": 5, "model-b": 2}
    sampler = LoadSampler(
        lambda: dict(queued), VectorBudget(LIMIT), lambda: ["model-a", "model-b", "model-c"]
    )

    def value(model: str) -> float | None:
        return REGISTRY.get_sample_value("lstm_service_model_queued_texts", {"model": model})

    sampler.sample()
    assert (value("model-a"), value("model-b"), value("model-c")) == (5, 2, 0)
    queued.clear()
    sampler.sample()
    assert (value("model-a"), value("model-b"), value("model-c")) == (0, 0, 0)


def test_with_two_workers_each_process_has_its_process_metrics(tiny_store: Path, tmp_path: Path) -> None:
    server = LiveServer.start(
        tiny_store, tmp_path / "server.log", ["--workers", "2", "--max-vector-bytes", str(LIMIT)]
    )
    try:
        budget = series("lstm_service_vector_budget_bytes")
        deadline = time.monotonic() + 60
        while True:  # each worker reports once it has started and sampled: until both have
            samples = parse_metrics(server.call("GET", "/metrics").body)
            pids = {dict(labels)["pid"] for name, labels in samples if name == "process_cpu_seconds_total"}
            if (len(pids) >= 3 and samples.get(budget) == 2 * LIMIT) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert str(server.process.pid) in pids and len(pids) == 3  # the supervisor and its two workers
        resident = [key for key in samples if key[0] == "process_resident_memory_bytes"]
        assert len(resident) == 3 and all(samples[key] > 0 for key in resident)
        assert samples[budget] == 2 * LIMIT  # summed over workers
        assert len([key for key in samples if key[0] == "lstm_service_build_info"]) == 1
        server.terminate()
        assert server.process.wait(timeout=60) == 0
    finally:
        server.kill()
