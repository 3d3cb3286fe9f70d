"""LSTM_SERVICE_RELOAD_INTERVAL_SECONDS: new versions dropped into the store are picked up, a refused one
is tried once (until its files change), and a pinned model stays where it was pinned.

"Nothing happened" is proven by waiting for the poller to finish more polls (its ``polls`` counter), not by
sleeping: a slow machine then waits longer instead of passing without a single poll having run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from support.apps import ADMIN, ADMIN_TOKEN, failed_reloads, started_app
from support.stores import add_version

from service.settings import Settings

pytestmark = pytest.mark.anyio
INTERVAL = 0.05
DEADLINE_SECONDS = 20


@pytest.fixture
async def polling_app(store_copy: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings(model_store=store_copy, admin_token=ADMIN_TOKEN, reload_interval_seconds=INTERVAL)
    async with started_app(settings) as app_and_client:
        yield app_and_client


async def _eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, f"not true within {DEADLINE_SECONDS} s"
        await asyncio.sleep(INTERVAL)


async def _more_polls(app: FastAPI, count: int) -> None:
    """Wait until the poller has finished ``count`` more polls than it had when called."""
    target = app.state.poller.polls + count

    async def polled() -> bool:
        return bool(app.state.poller.polls >= target)

    await _eventually(polled)


async def _serving(client: httpx.AsyncClient, model: str = "tiny-en") -> int:
    return int((await client.post("/classify", json={"text": "goal", "model": model})).json()["version"])


async def test_a_new_version_is_picked_up_and_a_broken_one_is_tried_once(
    polling_app: tuple[FastAPI, httpx.AsyncClient], store_copy: Path
) -> None:
    app, client = polling_app
    add_version(store_copy, "tiny-en", 2)
    await _eventually(lambda: _is(client, 2))

    before = await failed_reloads(client, "tiny-en", 3)
    broken = add_version(store_copy, "tiny-en", 3)
    (broken / "labels.json").write_text('["x", "y", "z"]', encoding="utf-8")

    async def refused_once() -> bool:
        return await failed_reloads(client, "tiny-en", 3) == before + 1

    await _eventually(refused_once)
    await _more_polls(app, 3)  # three more polls saw the unchanged broken bundle and left it alone
    assert await failed_reloads(client, "tiny-en", 3) == before + 1
    assert await _serving(client) == 2
    detail = (await client.get("/models/tiny-en")).json()
    assert detail["version"] == 2 and "version 3 was not loaded: checksum mismatch" in detail["reason"]


async def test_a_pinned_model_stays_pinned_until_it_is_unpinned(
    polling_app: tuple[FastAPI, httpx.AsyncClient], store_copy: Path
) -> None:
    app, client = polling_app
    pinned = await client.post("/admin/models/tiny-en/load", json={"version": 1}, headers=ADMIN)
    assert pinned.json()["pinned"] is True
    add_version(store_copy, "tiny-en", 2)

    await _more_polls(app, 3)  # three polls saw version 2 and left the pinned version 1 serving
    assert await _serving(client) == 1

    unpinned = await client.post("/admin/models/tiny-en/load", headers=ADMIN)
    assert (unpinned.json()["version"], unpinned.json()["pinned"]) == (2, False)


async def test_a_version_pinned_by_the_settings_stays_with_a_newer_one_in_the_store(
    store_copy: Path,
) -> None:
    add_version(store_copy, "tiny-en", 2)
    settings = Settings(
        model_store=store_copy, admin_token=ADMIN_TOKEN, reload_interval_seconds=INTERVAL, pinned="tiny-en=1"
    )
    async with started_app(settings) as (app, client):
        await _more_polls(app, 3)
        detail = (await client.get("/models/tiny-en")).json()
        served = await _serving(client)
        explicit = await client.post("/classify", json={"text": "goal", "model": "tiny-en", "version": 2})

    assert (served, detail["version"], detail["pinned"], detail["versions"]) == (1, 1, True, [1, 2])
    # Only the pinned version is loaded: asking for the newer one is a 404, not a silent load.
    assert (explicit.status_code, explicit.json()["error_type"]) == (404, "not_found")


async def _is(client: httpx.AsyncClient, version: int) -> bool:
    return await _serving(client) == version
