"""``POST /classify`` answered by the plain-ASGI fast path is indistinguishable from the FastAPI route.

The same bodies go to the app as built (fast path in front) and to one whose fast path is taken out (the
FastAPI route answers): status, body and header names must match, errors included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.api.app import create_app
from service.api.hotpath import ClassifyFastPath
from service.settings import Settings

pytestmark = pytest.mark.anyio

_VARYING = {"x-request-id", "x-queue-time", "x-inference-time", "content-length"}

BODIES = [
    b"",
    b"{",
    b"[1]",
    b'"x"',
    b"null",
    b"1e400",
    b"{}",
    b"[" * 5000 + b"]" * 5000,
    b'{"text": ""}',
    b'{"text": "   "}',
    b'{"text": "\xff\xfe"}',
    b'{"text": "\\ud800abc"}',
    b'{"text": "good", "version": NaN}',
    b'{"text": "good", "version": 1.0}',
    b'{"text": "good", "version": 2.5}',
    b'{"text": "good", "version": 99999999999999999999999}',
    b'{"text": "good", "version": true}',
    b'{"text": "good", "version": 7}',
    b'{"text": "good", "truncate": "yes"}',
    b'{"text": "good", "extra": 1}',
    b'{"text": "good", "texts": ["a"]}',
    b'{"texts": []}',
    b'{"texts": ["a", "", 3, 4, 5]}',
    b'{"text": 5}',
    b'{"text": "good", "model": "nope"}',
    b'{"text": "good", "model": "../x"}',
    b'{"text": "a", "text": "b"}',
    b'{"text": null, "texts": ["good day", "bad day"], "model": "tiny-en", "version": null}',
    '{"texts": ["很好", "不好 很差"], "model": "tiny-zh"}'.encode(),
    b'{"text": "' + b"word " * 3000 + b'", "truncate": false}',
    b'{"text": "' + b"word " * 3000 + b'"}',
    b'{"texts": [' + b",".join([b'"a"'] * 300) + b"]}",
    b'{"text": "' + b"x" * 20_001 + b'"}',
]


@asynccontextmanager
async def _client(settings: Settings, fast_path: bool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    if not fast_path:
        app.user_middleware = [entry for entry in app.user_middleware if entry.cls is not ClassifyFastPath]
    async with LifespanManager(app, startup_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


async def _answers(client: httpx.AsyncClient) -> list[tuple[int, object, list[str]]]:
    answers = []
    for body in BODIES:
        for headers in ({"Content-Type": "application/json"}, {}):
            response = await client.post("/classify", content=body, headers=headers)
            names = sorted(name for name in response.headers if name.lower() not in _VARYING)
            answers.append((response.status_code, response.json(), names))
    return answers


@pytest.mark.parametrize("api_key", [None, "secret"])
async def test_the_fast_path_answers_exactly_as_the_fastapi_route(
    tiny_store: Path, api_key: str | None
) -> None:
    settings = Settings(model_store=tiny_store, api_key=api_key)
    async with _client(settings, fast_path=True) as fast, _client(settings, fast_path=False) as slow:
        if api_key is not None:
            for client in (fast, slow):
                client.headers["Authorization"] = f"Bearer {api_key}"
        fast_answers, slow_answers = await _answers(fast), await _answers(slow)
        assert fast_answers == slow_answers
        assert {status for status, _, _ in fast_answers} >= {200, 404, 422}
        if api_key is not None:  # a wrong key is refused the same way by both doors
            for client in (fast, slow):
                client.headers["Authorization"] = "Bearer wrong"
            refused = [await client.post("/classify", json={"text": "good"}) for client in (fast, slow)]
            assert [r.status_code for r in refused] == [401, 401]
            assert refused[0].json() == refused[1].json()
            assert refused[0].headers.get("www-authenticate") == refused[1].headers.get("www-authenticate")


async def test_the_fast_path_keeps_the_request_metrics_label(client: httpx.AsyncClient) -> None:
    await client.post("/classify", json={"text": "good"})
    metrics = (await client.get("/metrics")).text
    assert 'lstm_service_requests_total{method="POST",route="/classify",status="200"}' in metrics
