"""A hot reload or an unload lets go of the old version's micro-batcher (its thread and its session),
after the batcher has finished what it held: reloads must not pile up sessions in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from support.apps import ADMIN, ADMIN_TOKEN
from support.stores import add_version

from service.api.app import create_app
from service.settings import Settings

pytestmark = pytest.mark.anyio


async def test_reload_and_unload_retire_the_old_batchers(store_copy: Path) -> None:
    app = create_app(Settings(model_store=store_copy, admin_token=ADMIN_TOKEN, default_model="tiny-en"))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            inference = app.state.services.engine.inference
            for model in ("tiny-en", "tiny-zh"):
                answer = await client.post("/classify", json={"text": "好 goal", "model": model})
                assert answer.status_code == 200
            assert set(inference._batchers) == {("tiny-en", 1), ("tiny-zh", 1)}
            old = inference._batchers[("tiny-en", 1)][1]

            add_version(store_copy, "tiny-en", 2)
            loaded = await client.post("/admin/models/tiny-en/load", json={}, headers=ADMIN)
            assert loaded.status_code == 200
            answer = await client.post("/classify", json={"text": "goal"})
            assert answer.json()["version"] == 2
            assert ("tiny-en", 1) not in inference._batchers and ("tiny-en", 2) in inference._batchers
            await asyncio.wait_for(asyncio.gather(*inference._retired), 10)
            assert not old.running  # stopped, so its thread and the session it holds are released

            assert (await client.post("/admin/models/tiny-zh/unload", headers=ADMIN)).status_code == 200
            assert (await client.post("/classify", json={"text": "goal"})).status_code == 200
            assert set(inference._batchers) == {("tiny-en", 2)}
