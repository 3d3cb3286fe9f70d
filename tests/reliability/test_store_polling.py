"""LSTM_SERVICE_RELOAD_INTERVAL_SECONDS: new versions dropped into the store are picked up, a refused one
is tried once (until its files change), and a pinned model stays where it was pinned."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability_support import ADMIN, ADMIN_TOKEN, add_version, failed_reloads

from service.settings import Settings

pytestmark = pytest.mark.anyio
INTERVAL = 0.05


@pytest.fixture
async def polling_client(store_copy: Path, start_app: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(model_store=store_copy, admin_token=ADMIN_TOKEN, reload_interval_seconds=INTERVAL)
    async with start_app(settings) as client:
        yield client


async def _eventually(condition: Callable[[], Awaitable[bool]], deadline_seconds: float = 20) -> None:
    deadline = time.monotonic() + deadline_seconds
    while not await condition():
        assert time.monotonic() < deadline, f"not true within {deadline_seconds} s"
        await asyncio.sleep(INTERVAL)


async def _serving(client: httpx.AsyncClient, model: str = "tiny-en") -> int:
    return int((await client.post("/classify", json={"text": "goal", "model": model})).json()["version"])


async def test_a_new_version_is_picked_up_and_a_broken_one_is_tried_once(
    polling_client: httpx.AsyncClient, store_copy: Path
) -> None:
    add_version(store_copy, "tiny-en", 2)
    await _eventually(lambda: _is(polling_client, 2))

    before = await failed_reloads(polling_client, "tiny-en", 3)
    broken = add_version(store_copy, "tiny-en", 3)
    (broken / "labels.json").write_text('["x", "y", "z"]', encoding="utf-8")

    async def refused_once() -> bool:
        return await failed_reloads(polling_client, "tiny-en", 3) == before + 1

    await _eventually(refused_once)
    await asyncio.sleep(INTERVAL * 10)  # ten more polls: the unchanged broken bundle is not retried
    assert await failed_reloads(polling_client, "tiny-en", 3) == before + 1
    assert await _serving(polling_client) == 2
    detail = (await polling_client.get("/models/tiny-en")).json()
    assert detail["version"] == 2 and "version 3 was not loaded: checksum mismatch" in detail["reason"]


async def test_a_pinned_model_stays_pinned_until_it_is_unpinned(
    polling_client: httpx.AsyncClient, store_copy: Path
) -> None:
    pinned = await polling_client.post("/admin/models/tiny-en/load", json={"version": 1}, headers=ADMIN)
    assert pinned.json()["pinned"] is True
    add_version(store_copy, "tiny-en", 2)

    await asyncio.sleep(INTERVAL * 10)
    assert await _serving(polling_client) == 1

    unpinned = await polling_client.post("/admin/models/tiny-en/load", headers=ADMIN)
    assert (unpinned.json()["version"], unpinned.json()["pinned"]) == (2, False)


async def _is(client: httpx.AsyncClient, version: int) -> bool:
    return await _serving(client) == version
