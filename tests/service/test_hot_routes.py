"""``POST /classify`` answered as a hot route (plain ASGI) is indistinguishable from the FastAPI route.

The same bodies go to the app as built (hot routes on) and to one built with ``hot_routes=False`` (the
FastAPI route answers): status, body and header names must match, errors included.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.responses import JSONResponse, Response
from support.apps import running_app

from service.api.app import create_app
from service.api.deps import Services
from service.api.hotpath import HotRoute, HotRoutes, RawBody
from service.api.schemas import ClassifyRequest
from service.errors import InvalidRequest
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


async def _answers(client: httpx.AsyncClient) -> list[tuple[int, object, list[str]]]:
    answers = []
    for body in BODIES:
        for headers in ({"Content-Type": "application/json"}, {}):
            response = await client.post("/classify", content=body, headers=headers)
            names = sorted(name for name in response.headers if name.lower() not in _VARYING)
            answers.append((response.status_code, response.json(), names))
    return answers


@pytest.mark.parametrize("api_key", [None, "secret"])
async def test_the_hot_route_answers_exactly_as_the_fastapi_route(
    tiny_store: Path, api_key: str | None
) -> None:
    settings = Settings(model_store=tiny_store, api_key=api_key)
    async with (
        running_app(settings, hot_routes=True) as fast,
        running_app(settings, hot_routes=False) as slow,
    ):
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


@pytest.mark.parametrize("hot_routes", [True, False])
async def test_both_doors_label_the_request_metrics_with_the_route(
    tiny_store: Path, hot_routes: bool
) -> None:
    async with running_app(Settings(model_store=tiny_store), hot_routes=hot_routes) as client:
        await client.post("/classify", json={"text": "good"})
        await client.post("/classify", json={"text": ""})
        metrics = (await client.get("/metrics")).text
    for status in (200, 422):
        assert f'lstm_service_requests_total{{method="POST",route="/classify",status="{status}"}}' in metrics


async def _echo(request: ClassifyRequest, services: object, path_params: dict[str, object]) -> object:
    return {"params": dict(path_params), "items": request.items}


def test_a_hot_route_matches_its_method_and_path_template_only() -> None:
    exact = HotRoute("POST", "/classify", ClassifyRequest, _echo)
    templated = HotRoute("POST", "/v2/models/{name}/versions/{version:int}/infer", ClassifyRequest, _echo)
    table = HotRoutes([exact, templated])

    assert table.match("POST", "/classify") == (exact, {})
    assert table.match("GET", "/classify") is None
    assert table.match("POST", "/classify/") is None
    assert table.match("POST", "/v2/models/tiny-en/versions/3/infer") == (
        templated,
        {"name": "tiny-en", "version": 3},
    )
    assert table.match("POST", "/v2/models/tiny-en/versions/x/infer") is None
    assert table.match("PUT", "/v2/models/tiny-en/versions/3/infer") is None


def test_a_hot_route_without_a_fastapi_route_is_refused(tiny_store: Path, monkeypatch) -> None:
    from service.api import app as app_module

    orphan = HotRoute("POST", "/nowhere", ClassifyRequest, _echo)
    monkeypatch.setattr(app_module, "HOT_ROUTES", (*app_module.HOT_ROUTES, orphan))
    with pytest.raises(RuntimeError, match="POST /nowhere"):
        create_app(Settings(model_store=tiny_store))


async def _raw_echo(request: RawBody, services: Services, path_params: dict[str, object]) -> Response:
    """A stand-in for a binary protocol route: reads the raw body and a header, answers its own way."""
    if request.body == b"refuse":
        raise InvalidRequest("refused by the handler")
    answer = {
        "name": path_params["name"],
        "bytes": len(request.body),
        "header": request.headers.get("x-probe"),
    }
    return JSONResponse(answer, status_code=202, headers={"x-answered-by": "hot-route"})


async def test_a_templated_raw_body_hot_route_joins_with_one_line(tiny_store: Path, monkeypatch) -> None:
    from service.api import app as app_module

    # The OIP infer route is a hot route with a FastAPI twin; a hot route listed before it takes it over here.
    raw = HotRoute("POST", "/v2/models/{name}/infer", None, _raw_echo)
    monkeypatch.setattr(app_module, "HOT_ROUTES", (raw, *app_module.HOT_ROUTES))
    async with running_app(Settings(model_store=tiny_store), hot_routes=True) as client:
        answered = await client.post(
            "/v2/models/tiny-en/infer", content=b"\x00\x01binary", headers={"X-Probe": "42"}
        )
        refused = await client.post("/v2/models/tiny-en/infer", content=b"refuse")
        metrics = (await client.get("/metrics")).text

    assert answered.status_code == 202 and answered.headers["x-answered-by"] == "hot-route"
    assert answered.json() == {"name": "tiny-en", "bytes": 8, "header": "42"}
    assert answered.headers["x-request-id"]  # the request middleware still wraps the hot route
    assert refused.status_code == 422
    assert refused.json() == {"error": "refused by the handler", "error_type": "validation"}
    label = 'lstm_service_requests_total{method="POST",route="/v2/models/{name}/infer",status="202"}'
    assert label in metrics
