"""Error paths needing their own app: an unexpected exception (500), a request past its deadline (504)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.api.app import create_app
from service.api.errors import describe_validation_errors
from service.errors import INTERNAL_MESSAGE, safe_text
from service.observability.logs import JsonFormatter, RequestIdFilter
from service.settings import Settings

pytestmark = pytest.mark.anyio
StartApp = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


async def test_an_unexpected_exception_is_a_generic_500_logged_with_its_trace(
    service_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(service_settings)

    async def explode() -> None:
        raise RuntimeError("secret detail at /srv/models/x")

    app.add_api_route("/explode", explode)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            with caplog.at_level(logging.ERROR, logger="service.api.middleware"):
                response = await client.get("/explode", headers={"X-Request-ID": "req-500"})
            still_serving = await client.post("/classify", json={"text": "goal"})

    assert response.status_code == 500
    assert response.json() == {"error": INTERNAL_MESSAGE, "error_type": "internal"}
    assert response.headers["x-request-id"] == "req-500"
    assert "secret detail" not in response.text and "Traceback" not in response.text
    (record,) = [record for record in caplog.records if record.name == "service.api.middleware"]
    assert record.exc_info is not None and "secret detail" in str(record.exc_info[1])
    assert still_serving.status_code == 200


async def test_a_request_past_its_deadline_gets_504(tiny_store: Path, start_app: StartApp) -> None:
    async with start_app(Settings(model_store=tiny_store, request_timeout_seconds=1e-9)) as client:
        response = await client.post("/classify", json={"text": "goal"})
        live = await client.get("/livez")

    assert response.status_code == 504
    assert response.json()["error_type"] == "timeout"
    assert live.status_code == 200


def test_validation_messages_are_short_and_stable() -> None:
    errors = [
        {"type": "string_type", "loc": ("body", "texts", index), "msg": "Input should be a valid string"}
        for index in range(5)
    ]

    assert describe_validation_errors(errors) == (
        "texts.0: Input should be a valid string; texts.1: Input should be a valid string; "
        "texts.2: Input should be a valid string; (and 2 more)"
    )
    assert describe_validation_errors([{"type": "json_invalid", "loc": ("body", 3)}]) == (
        "request body is not valid JSON"
    )


def test_safe_text_survives_lone_surrogates_and_bounds_length() -> None:
    assert safe_text("a\ud800b") == "a\\ud800b"
    assert len(safe_text("x" * 10_000)) == 500


def test_json_log_lines_carry_the_request_id_and_extras() -> None:
    record = logging.LogRecord("service.access", logging.INFO, __file__, 1, "GET %s", ("/livez",), None)
    record.status = 200
    RequestIdFilter().filter(record)

    line = JsonFormatter().format(record)

    assert '"message":"GET /livez"' in line and '"status":200' in line and '"request_id":"-"' in line
