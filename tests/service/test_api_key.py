"""LSTM_SERVICE_API_KEY: inference and model routes need it (Bearer or X-API-Key); health, /metrics and
the docs stay open; a missing or wrong key gets the same 401 without details."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from service.settings import Settings

pytestmark = pytest.mark.anyio
StartApp = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
KEY = "k3y-\u00e9-not-ascii-on-purpose"  # latin-1 on the wire, like any header value
UNAUTHORIZED = {  # the same for a missing and a wrong key; it names the headers that carry one
    "error": "unauthorized: send the API key in the header 'Authorization: Bearer <key>' "
    "or 'X-API-Key: <key>'",
    "error_type": "unauthorized",
}
GUARDED = [
    ("POST", "/classify", {"text": "goal"}),
    ("POST", "/tokenize", {"text": "goal"}),
    ("POST", "/embed", {"tokens": ["goal"]}),
    ("POST", "/hidden-states", {"text": "goal"}),
    ("GET", "/models", None),
    ("GET", "/models/tiny-en", None),
]
OPEN = ["/livez", "/readyz", "/health", "/metrics", "/openapi.json", "/docs"]


@pytest.fixture(scope="module")
async def keyed(tiny_store: Path, start_app: StartApp) -> AsyncIterator[httpx.AsyncClient]:
    async with start_app(Settings(model_store=tiny_store, api_key=KEY)) as client:
        yield client


def _latin1(headers: dict[str, str]) -> dict[str, bytes]:
    return {name: value.encode("latin-1") for name, value in headers.items()}


@pytest.mark.parametrize(("method", "path", "body"), GUARDED)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY[:-1]}, {"Authorization": f"Basic {KEY}"}],
    ids=["none", "wrong bearer", "wrong header", "basic scheme"],
)
async def test_a_missing_or_wrong_key_gets_401(
    keyed: httpx.AsyncClient, method: str, path: str, body: object, headers: dict[str, str]
) -> None:
    response = await keyed.request(method, path, json=body, headers=_latin1(headers))

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response.headers["www-authenticate"] == "Bearer" and response.headers["x-request-id"]


@pytest.mark.parametrize(("method", "path", "body"), GUARDED)
@pytest.mark.parametrize(
    "headers", [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}], ids=["bearer", "x-api-key"]
)
async def test_the_right_key_works_either_way(
    keyed: httpx.AsyncClient, method: str, path: str, body: object, headers: dict[str, str]
) -> None:
    response = await keyed.request(method, path, json=body, headers=_latin1(headers))

    assert response.status_code == 200


@pytest.mark.parametrize("path", OPEN)
async def test_health_metrics_and_docs_stay_open(keyed: httpx.AsyncClient, path: str) -> None:
    assert (await keyed.get(path)).status_code == 200


async def test_the_openapi_document_declares_the_401(
    keyed: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    keyed_schema = (await keyed.get("/openapi.json")).json()
    open_schema = (await client.get("/openapi.json")).json()

    assert "401" in keyed_schema["paths"]["/classify"]["post"]["responses"]
    assert "401" not in open_schema["paths"]["/classify"]["post"]["responses"]
    assert "401" not in keyed_schema["paths"]["/readyz"]["get"]["responses"]
