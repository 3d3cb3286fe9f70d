"""The operator's switches: /metrics and the API docs open, guarded (API key or admin token) or off; a
minimum API-key length refused at start; several API keys at once (rotation); CORS off by default and on
for the origins named; the docs page's CSP and nosniff. Each on the real app with the tiny store."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from service.settings import Settings, describe_error

pytestmark = pytest.mark.anyio
StartApp = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
NEW_KEY = "new-key-0123456789abcdef"
OLD_KEY = "old-key-0123456789abcdef"
ADMIN_TOKEN = "operator-admin-token-0123"
ORIGIN = "https://app.example.com"
OPERATOR_PATHS = ("/metrics", "/docs", "/openapi.json", "/docs/swagger-ui.css")


async def _statuses(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> dict[str, int]:
    return {path: (await client.get(path, headers=headers)).status_code for path in OPERATOR_PATHS}


async def test_by_default_metrics_and_docs_are_open(client: httpx.AsyncClient) -> None:
    assert await _statuses(client) == dict.fromkeys(OPERATOR_PATHS, 200)


async def test_off_answers_404_like_an_unknown_path(tiny_store: Path, start_app: StartApp) -> None:
    settings = Settings(model_store=tiny_store, metrics_access="off", docs_access="off")
    async with start_app(settings) as client:
        assert await _statuses(client) == dict.fromkeys(OPERATOR_PATHS, 404)
        assert (await client.get("/livez")).status_code == 200  # health stays open
        assert (await client.post("/classify", json={"text": "goal"})).status_code == 200


async def test_api_key_access_needs_an_api_key(tiny_store: Path, start_app: StartApp) -> None:
    settings = Settings(
        model_store=tiny_store, api_key=NEW_KEY, metrics_access="api-key", docs_access="api-key"
    )
    async with start_app(settings) as client:
        assert await _statuses(client) == dict.fromkeys(OPERATOR_PATHS, 401)
        assert await _statuses(client, {"X-API-Key": "wrong-key-0123456789"}) == dict.fromkeys(
            OPERATOR_PATHS, 401
        )
        assert await _statuses(client, {"X-API-Key": NEW_KEY}) == dict.fromkeys(OPERATOR_PATHS, 200)
        schema = (await client.get("/openapi.json", headers={"X-API-Key": NEW_KEY})).json()
        assert "/classify" in schema["paths"]  # the guarded route serves the whole document
        assert (
            "lstm_service_requests_total"
            in (await client.get("/metrics", headers={"X-API-Key": NEW_KEY})).text
        )


async def test_admin_access_needs_the_admin_token_not_an_api_key(
    tiny_store: Path, start_app: StartApp
) -> None:
    settings = Settings(
        model_store=tiny_store,
        api_key=NEW_KEY,
        admin_token=ADMIN_TOKEN,
        metrics_access="admin",
        docs_access="open",
    )
    async with start_app(settings) as client:
        assert (await client.get("/metrics", headers={"X-API-Key": NEW_KEY})).status_code == 401
        assert (
            await client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        ).status_code == 200
        assert (await client.get("/docs")).status_code == 200  # each switch is its own


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metrics_access": "api-key"}, "LSTM_SERVICE_METRICS_ACCESS='api-key' needs LSTM_SERVICE_API_KEY"),
        ({"docs_access": "admin"}, "LSTM_SERVICE_DOCS_ACCESS='admin' needs LSTM_SERVICE_ADMIN_TOKEN"),
        ({"extra_api_keys": OLD_KEY}, "EXTRA_API_KEYS is set without LSTM_SERVICE_API_KEY"),
        ({"api_key": "short"}, "shorter than 16 characters"),
        ({"api_key": NEW_KEY, "extra_api_keys": f"{OLD_KEY},tiny"}, "shorter than 16 characters"),
        ({"api_key": "0123456789", "api_key_min_length": 11}, "shorter than 11 characters"),
        ({"cors_origins": "https://app.example.com/"}, "is not an origin"),
        ({"cors_origins": "app.example.com"}, "is not an origin"),
    ],
)
def test_settings_that_cannot_work_are_refused(
    tiny_store: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(model_store=tiny_store, **options)  # type: ignore[arg-type]
    assert message in describe_error(refused.value)
    assert OLD_KEY not in describe_error(refused.value)  # secrets are never echoed


def test_a_shorter_minimum_accepts_a_short_key(tiny_store: Path) -> None:
    assert Settings(model_store=tiny_store, api_key="0123456789", api_key_min_length=10).api_key is not None


def test_the_cli_refuses_a_short_api_key_before_starting(tiny_store: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--port", "1", "--model-store", str(tiny_store)],
        env={"LSTM_SERVICE_API_KEY": "k", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert "shorter than 16 characters" in result.stderr and "openssl rand" in result.stderr
    assert "Traceback" not in result.stderr


async def test_every_configured_key_is_accepted_during_rotation(
    tiny_store: Path, start_app: StartApp
) -> None:
    settings = Settings(model_store=tiny_store, api_key=NEW_KEY, extra_api_keys=f" {OLD_KEY} ,")
    assert len(settings.api_keys()) == 2
    async with start_app(settings) as client:
        for headers in ({"X-API-Key": NEW_KEY}, {"Authorization": f"Bearer {OLD_KEY}"}):
            assert (await client.post("/classify", json={"text": "goal"}, headers=headers)).status_code == 200
            assert (
                await client.post("/embed", json={"tokens": ["goal"]}, headers=headers)
            ).status_code == 200
        for headers in ({}, {"X-API-Key": OLD_KEY[:-1]}, {"X-API-Key": f"{NEW_KEY},{OLD_KEY}"}):
            assert (await client.post("/classify", json={"text": "goal"}, headers=headers)).status_code == 401


def test_extra_keys_read_from_the_environment(tiny_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSTM_SERVICE_API_KEY", NEW_KEY)
    monkeypatch.setenv("LSTM_SERVICE_EXTRA_API_KEYS", f"{OLD_KEY},another-old-key-0123")
    monkeypatch.setenv("LSTM_SERVICE_CORS_ORIGINS", f"{ORIGIN}, http://localhost:3000")
    settings = Settings(model_store=tiny_store)
    assert [key.get_secret_value() for key in settings.api_keys()] == [
        NEW_KEY,
        OLD_KEY,
        "another-old-key-0123",
    ]
    assert settings.cors_origins == (ORIGIN, "http://localhost:3000")
    assert OLD_KEY not in repr(settings)


async def test_without_origins_no_cors_headers(client: httpx.AsyncClient) -> None:
    answer = await client.post("/classify", json={"text": "goal"}, headers={"Origin": ORIGIN})
    preflight = await client.options(
        "/classify", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )

    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_answers_the_origins_named_and_no_other(tiny_store: Path, start_app: StartApp) -> None:
    settings = Settings(model_store=tiny_store, api_key=NEW_KEY, cors_origins=(ORIGIN,))
    async with start_app(settings) as client:
        preflight = await client.options(
            "/classify",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key, content-type",
            },
        )
        assert preflight.status_code == 200  # answered before the credential check: a browser sends none
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()

        # a hot route (answered past FastAPI) and a FastAPI route both carry the headers
        for path, body in (("/classify", {"text": "goal"}), ("/tokenize", {"text": "goal"})):
            answer = await client.post(path, json=body, headers={"Origin": ORIGIN, "X-API-Key": NEW_KEY})
            assert answer.status_code == 200
            assert answer.headers["access-control-allow-origin"] == ORIGIN
            assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()

        other = await client.options(
            "/classify", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers


async def test_the_docs_page_has_a_csp_and_nosniff(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    policy = page.headers["content-security-policy"]

    assert page.status_code == 200
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert (await client.get("/docs/swagger-ui-bundle.js")).headers["x-content-type-options"] == "nosniff"
