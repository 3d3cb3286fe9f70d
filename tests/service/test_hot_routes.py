"""``POST /classify`` answered as a hot route (plain ASGI) is indistinguishable from the FastAPI route.

The same bodies go to the app as built (hot routes on) and to one built with ``hot_routes=False`` (the
FastAPI route answers): status, body and header names must match, errors included.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from support.apps import running_app

from service.api.app import create_app
from service.api.hotpath import HotRoute, HotRoutes
from service.api.native.schemas import ClassifyRequest
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


@pytest.mark.parametrize("api_key", [None, "secret-0123456789"])
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
    """Echo the path parameters and the texts."""
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


async def test_a_hot_route_declared_once_is_documented_and_answered_by_its_generated_twin(
    tiny_store: Path, monkeypatch
) -> None:
    from service.api import app as app_module

    extra = HotRoute("POST", "/nowhere/{name}", ClassifyRequest, _echo, tags=("probe",))
    monkeypatch.setattr(app_module, "HOT_ROUTES", (*app_module.HOT_ROUTES, extra))
    operation = create_app(Settings(model_store=tiny_store)).openapi()["paths"]["/nowhere/{name}"]["post"]
    assert operation["tags"] == ["probe"] and operation["description"] == _echo.__doc__
    assert [parameter["name"] for parameter in operation["parameters"]] == ["name"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ClassifyRequest"
    )
    answers = []
    for hot in (True, False):
        async with running_app(Settings(model_store=tiny_store), hot_routes=hot) as client:
            answers.append(await client.post("/nowhere/x", json={"text": "good"}))
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()


def test_no_route_path_is_written_twice_in_the_service() -> None:
    """Each route's path string is passed once, to one declaration, in service/api: a hot route's FastAPI
    twin is generated from it, never written beside it."""
    import ast
    from collections import Counter

    app = create_app(Settings(model_store=Path(__file__).resolve().parents[1] / "fixtures" / "store"))
    paths = {route.path for route in app.routes if getattr(route, "path", "").startswith("/")}
    paths.discard(app.openapi_url)  # FastAPI's own
    declared: Counter[str] = Counter()
    for source in (Path(__file__).resolve().parents[2] / "service" / "api").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in dir(str):  # "/".join(...), text.rsplit("/", 1): not declarations
                continue
            for argument in node.args:
                if isinstance(argument, ast.Constant) and argument.value in paths:
                    declared[argument.value] += 1
    assert set(declared) == paths  # every route's path is found where it is declared...
    assert {path: count for path, count in declared.items() if count > 1} == {}  # ...and only there
