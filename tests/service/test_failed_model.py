"""A bundle damaged in the store: not served, reported on /readyz, and the other model still serves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from service.api.native.schemas import ModelDetailResponse, ModelListResponse, NotReadyResponse
from service.settings import Settings

pytestmark = pytest.mark.anyio
StartApp = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def damaged_client(store_copy: Path, start_app: StartApp) -> AsyncIterator[httpx.AsyncClient]:
    """tiny-en's tokenizer.json was edited after the bundle was written; tiny-zh is intact."""
    tokenizer_file = store_copy / "tiny-en" / "1" / "tokenizer.json"
    tokenizer_file.write_text(
        tokenizer_file.read_text(encoding="utf-8").replace("goal", "gaol"), encoding="utf-8"
    )
    async with start_app(Settings(model_store=store_copy)) as client:
        yield client


async def test_readiness_reports_the_damaged_model_and_why(damaged_client: httpx.AsyncClient) -> None:
    ready, health, live = [await damaged_client.get(path) for path in ("/readyz", "/health", "/livez")]

    assert (ready.status_code, health.status_code, live.status_code) == (503, 503, 200)
    body = NotReadyResponse.model_validate(ready.json())
    assert body.status == "not_ready" and body.error_type.value == "unavailable"
    assert body.models["tiny-en"].state.value == "failed"
    assert body.models["tiny-en"].reason == (
        "checksum mismatch for tokenizer.json: the file was changed after the bundle was written"
    )
    assert body.models["tiny-zh"].state.value == "ready"
    assert "tiny-en" in body.error and "checksum mismatch" in body.error
    assert health.json() == ready.json()


async def test_the_other_model_still_serves_and_the_damaged_one_answers_503(
    damaged_client: httpx.AsyncClient,
) -> None:
    healthy = await damaged_client.post("/classify", json={"text": "很好", "model": "tiny-zh"})
    damaged = await damaged_client.post("/classify", json={"text": "goal"})  # tiny-en is the default

    assert healthy.status_code == 200
    assert damaged.status_code == 503
    assert damaged.json() == {
        "error": "model tiny-en is not available: checksum mismatch for tokenizer.json: the file was changed "
        "after the bundle was written",
        "error_type": "unavailable",
    }


async def test_models_routes_describe_the_damaged_model(damaged_client: httpx.AsyncClient) -> None:
    listing = ModelListResponse.model_validate((await damaged_client.get("/models")).json())
    detail = await damaged_client.get("/models/tiny-en")

    assert [(model.name, model.state.value) for model in listing.models] == [
        ("tiny-en", "failed"),
        ("tiny-zh", "ready"),
    ]
    assert detail.status_code == 200
    described = ModelDetailResponse.model_validate(detail.json())
    assert described.state.value == "failed" and described.reason and described.labels is None
    assert described.versions == [1]
