"""What the service tells about itself: /metrics, timing headers, one JSON log line per request with its
request id, and readiness while draining."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from support.apps import parse_metrics, series

from service import lifecycle
from service.api.native.schemas import NotReadyResponse
from service.observability.logs import JsonFormatter, RequestIdFilter
from service.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """The access log as the service writes it with LSTM_SERVICE_LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("service.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_metrics_count_requests_batches_tokens_and_loads(
    tiny_store: Path, start_app: Callable[..., Any]
) -> None:
    # The metrics are the process's: other apps of the test session count into them too. So this test
    # starts its own app and checks what its requests added, and the gauges its start-up set.
    loads = series(
        "lstm_service_model_loads_total", kind="initial", model="tiny-en", outcome="loaded", version="1"
    )
    loads_before = REGISTRY.get_sample_value(loads[0], dict(loads[1])) or 0.0
    async with start_app(Settings(model_store=tiny_store)) as client:
        before = parse_metrics((await client.get("/metrics")).text)
        await client.post("/classify", json={"texts": ["goal team", "zzzz qqqq goal", "goal " * 100]})
        await client.post("/classify", json={"text": ""})  # 422
        await client.get("/models/ghost")  # 404 on a templated route
        await client.get("/no/such/path")
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = parse_metrics(response.text)
    model = {"model": "tiny-en", "version": "1"}
    added = {
        series("lstm_service_requests_total", method="POST", route="/classify", status="200"): 1,
        series("lstm_service_requests_total", method="POST", route="/classify", status="422"): 1,
        series("lstm_service_requests_total", method="GET", route="/models/{name}", status="404"): 1,
        series("lstm_service_requests_total", method="GET", route="unmatched", status="404"): 1,
        series("lstm_service_request_duration_seconds_count", method="POST", route="/classify"): 2,
        series("lstm_service_batch_size_sum", **model): 3,  # three texts, however they were batched
        series("lstm_service_queue_seconds_count", **model): 3,
        series("lstm_service_tokens_per_text_count", **model): 3,
        series("lstm_service_tokens_per_text_bucket", le="128.0", **model): 3,
        series("lstm_service_tokens_per_text_bucket", le="64.0", **model): 2,  # 100 tokens > 64
        series("lstm_service_unknown_token_ratio_count", **model): 3,
        series("lstm_service_unknown_token_ratio_bucket", le="0.5", **model): 2,  # 2 of 3 unknown > 0.5
        series("lstm_service_truncated_texts_total", **model): 1,  # max_length 64
    }
    assert {key: after.get(key, 0) - before.get(key, 0) for key in added} == added
    batches = series("lstm_service_batch_run_seconds_count", **model)
    assert after[batches] - before.get(batches, 0) >= 1
    assert after[loads] == loads_before + 1
    assert after[series("lstm_service_model_serving", **model)] == 1.0
    assert after[series("lstm_service_draining")] == 0.0
    for name in (
        "lstm_service_requests_in_flight",
        "lstm_service_queued_texts",
        "process_resident_memory_bytes",
    ):
        assert series(name) in after, name
    assert "/no/such/path" not in response.text  # raw paths never become labels


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/classify", {"text": "goal"}),
        ("/hidden-states", {"text": "goal"}),
        ("/embed", {"tokens": ["goal"], "neighbors": 2}),
    ],
)
async def test_answers_a_model_computed_carry_timing_headers(
    client: httpx.AsyncClient, path: str, body: object
) -> None:
    response = await client.post(path, json=body)

    assert response.status_code == 200
    queue, inference = float(response.headers["x-queue-time"]), float(response.headers["x-inference-time"])
    assert 0 <= queue < 30_000 and 0 < inference < 30_000


@pytest.mark.parametrize(("method", "path"), [("GET", "/readyz"), ("GET", "/models"), ("POST", "/tokenize")])
async def test_other_answers_have_no_timing_headers(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={"text": "goal"} if method == "POST" else None)

    assert "x-inference-time" not in response.headers and "x-queue-time" not in response.headers


async def test_one_json_log_line_per_request_with_its_id(
    client: httpx.AsyncClient, access_lines: io.StringIO
) -> None:
    sent = await client.post(
        "/classify", json={"text": "goal", "model": "tiny-en"}, headers={"X-Request-ID": "trace-42"}
    )
    generated = await client.get("/models/ghost")

    lines = [json.loads(line) for line in access_lines.getvalue().splitlines()]
    assert len(lines) == 2
    classified, missing = lines
    assert sent.headers["x-request-id"] == "trace-42" == classified["request_id"]
    assert {key: classified[key] for key in ("route", "method", "status", "model", "version")} == {
        "route": "/classify",
        "method": "POST",
        "status": 200,
        "model": "tiny-en",
        "version": 1,
    }
    assert classified["duration_ms"] > 0 and classified["inference_ms"] > 0 and classified["queue_ms"] >= 0
    assert missing["request_id"] == generated.headers["x-request-id"] and len(missing["request_id"]) == 32
    assert (missing["route"], missing["status"], missing["model"]) == ("/models/{name}", 404, None)


async def test_readiness_turns_503_while_draining_and_requests_are_still_answered(
    client: httpx.AsyncClient,
) -> None:
    lifecycle.begin_draining()
    try:
        ready, health, live = [await client.get(path) for path in ("/readyz", "/health", "/livez")]
        classified = await client.post("/classify", json={"text": "goal"})
    finally:
        lifecycle.reset()

    assert (ready.status_code, health.status_code, live.status_code) == (503, 503, 200)
    body = NotReadyResponse.model_validate(ready.json())
    assert (body.status, body.error_type.value) == ("draining", "unavailable")
    assert body.error == "draining: the server is shutting down"
    assert body.models["tiny-en"].state.value == "ready"
    assert classified.status_code == 200 and classified.headers["connection"] == "close"
    assert (await client.get("/readyz")).status_code == 200
