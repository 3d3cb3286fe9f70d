"""Serving as a new user meets it: a broken newest version falls back loudly, versions written without
promotion stay out, new models are found by the poller, the default model stays put, the docs work
offline, and every answer reads clearly."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from support.apps import started_app
from support.stores import add_version, rewrite_manifest

from service.settings import Settings

pytestmark = pytest.mark.anyio
StartApp = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
ADMIN = {"Authorization": "Bearer s3cret-admin"}


def _break(bundle: Path) -> None:
    with (bundle / "tokenizer.json").open("a", encoding="utf-8") as tokenizer:
        tokenizer.write(" ")  # changed after the bundle was written: its checksum no longer matches


def _copy_model(store: Path, source: str, name: str) -> Path:
    target = Path(shutil.copytree(store / source / "1", store / name / "1"))
    rewrite_manifest(target, lambda manifest: manifest.update(name=name))
    return target


async def _wait(predicate: Callable[[], object], seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


# ------------------------------------------------------------------------------------------- fallback


async def test_a_broken_newest_version_falls_back_and_says_how_to_recover(
    store_copy: Path, start_app: StartApp
):
    _break(add_version(store_copy, "tiny-en", 2))
    async with start_app(Settings(model_store=store_copy)) as client:
        ready, detail, metrics = [
            await client.get(path) for path in ("/readyz", "/models/tiny-en", "/metrics")
        ]
        classified = await client.post("/classify", json={"model": "tiny-en", "text": "the cup match"})
    assert ready.status_code == 200 and classified.status_code == 200
    assert classified.json()["version"] == 1
    health = ready.json()["models"]["tiny-en"]
    assert health["state"] == "ready" and health["version"] == 1 and health["failed_version"] == 2
    reason = detail.json()["reason"]
    assert reason.startswith("version 2 failed verification: checksum mismatch for tokenizer.json")
    assert (
        "serving version 1 instead" in reason
        and "To recover: fix or replace <model_store>/tiny-en/2" in reason
    )
    assert "LSTM_SERVICE_PINNED=tiny-en=1" in reason and detail.json()["version"] == 1
    assert 'lstm_service_model_version_refused{model="tiny-en",version="2"} 1.0' in metrics.text


async def test_strict_setting_keeps_a_broken_newest_version_failing(store_copy: Path, start_app: StartApp):
    _break(add_version(store_copy, "tiny-en", 2))
    async with start_app(Settings(model_store=store_copy, fallback=False)) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["models"]["tiny-en"]["state"] == "failed"


async def test_a_version_written_without_promotion_is_not_served(store_copy: Path, start_app: StartApp):
    rewrite_manifest(add_version(store_copy, "tiny-en", 2), lambda manifest: manifest.update(promoted=False))
    async with start_app(Settings(model_store=store_copy)) as client:
        listed = (await client.get("/models/tiny-en")).json()
    assert listed["version"] == 1 and listed["versions"] == [1, 2] and listed["reason"] is None


# ------------------------------------------------------------------------------------------- the poller


async def test_the_poller_finds_new_models_but_not_unloaded_ones_and_the_default_stays(store_copy: Path):
    settings = Settings(model_store=store_copy, reload_interval_seconds=0.05, admin_token="s3cret-admin")
    async with started_app(settings) as (app, client):
        assert (await client.get("/models")).json()["default_model"] == "tiny-en"
        _copy_model(store_copy, "tiny-zh", "a-new-model")  # first alphabetically: must not become the default
        await _wait(lambda: "a-new-model" in app.state.services.registry.names)
        answer = await client.post("/classify", json={"model": "a-new-model", "text": "很好"})
        assert answer.status_code == 200
        assert (await client.get("/models")).json()["default_model"] == "tiny-en"
        assert (await client.post("/classify", json={"text": "the cup match"})).json()["model"] == "tiny-en"
        unloaded = await client.post("/admin/models/a-new-model/unload", headers=ADMIN)
        assert unloaded.status_code == 200
        polls = app.state.poller.polls
        await _wait(lambda: app.state.poller.polls >= polls + 3)
        assert "a-new-model" not in app.state.services.registry.names  # an admin's unload holds


# ------------------------------------------------------------------------------------------- answers


async def test_the_401_body_names_the_header_expected(store_copy: Path, start_app: StartApp):
    settings = Settings(model_store=store_copy, admin_token="s3cret-admin", api_key="k3y-0123456789abcdef")
    async with start_app(settings) as client:
        admin = await client.post("/admin/models/tiny-en/load")
        keyed = await client.post("/classify", json={"text": "x"})
    assert (
        admin.status_code == 401
        and "'Authorization: Bearer <LSTM_SERVICE_ADMIN_TOKEN>'" in admin.json()["error"]
    )
    assert keyed.status_code == 401 and "'X-API-Key: <key>'" in keyed.json()["error"]


async def test_loading_an_unknown_model_says_so_without_none(store_copy: Path, start_app: StartApp):
    async with start_app(Settings(model_store=store_copy, admin_token="s3cret-admin")) as client:
        answer = await client.post("/admin/models/nope/load", headers=ADMIN)
    assert answer.status_code == 404
    assert answer.json()["error"] == "model nope is not in the store (it holds: tiny-en, tiny-zh)"
    assert "None" not in answer.text


async def test_an_unload_answer_carries_no_stale_failure_reason(store_copy: Path, start_app: StartApp):
    _break(add_version(store_copy, "tiny-zh", 2))
    async with start_app(
        Settings(model_store=store_copy, admin_token="s3cret-admin", fallback=False)
    ) as client:
        refused = await client.post("/admin/models/tiny-en/load", headers=ADMIN, json={"version": 3})
        assert refused.status_code == 404
        zh = (await client.get("/models/tiny-zh")).json()
        assert zh["state"] == "failed" and zh["reason"]  # an earlier failure, on record
        loaded = await client.post("/admin/models/tiny-zh/load", headers=ADMIN, json={"version": 1})
        assert loaded.status_code == 200 and loaded.json()["reason"] is None
        await client.post("/admin/models/tiny-zh/load", headers=ADMIN)  # version 2 again: refused
        assert (await client.get("/models/tiny-zh")).json()["reason"].startswith("version 2 was not loaded")
        unloaded = await client.post("/admin/models/tiny-zh/unload", headers=ADMIN)
    assert unloaded.status_code == 200 and unloaded.json()["reason"] is None
    assert unloaded.json()["workers"] == {"applied": 1, "of": 1}


# ------------------------------------------------------------------------------------------- docs


async def test_openapi_omits_the_admin_routes_when_they_are_off(store_copy: Path, start_app: StartApp):
    async with start_app(Settings(model_store=store_copy)) as client:
        off = (await client.get("/openapi.json")).json()["paths"]
    async with start_app(Settings(model_store=store_copy, admin_token="s3cret-admin")) as client:
        on = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in off if path.startswith("/admin")]
    assert "/admin/models/{name}/load" in on and "/classify" in off


async def test_the_docs_page_needs_nothing_but_the_service(store_copy: Path, start_app: StartApp):
    async with start_app(Settings(model_store=store_copy)) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        referenced = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
        referenced += re.findall(r"""url: ?['"]([^'"]+)['"]""", page.text)  # the OpenAPI document
        assert referenced and not [url for url in referenced if "//" in url]  # no other host, no CDN
        for url in referenced:
            asset = await client.get(url)
            assert asset.status_code == 200 and asset.content, url
        assert (await client.get("/docs/not-there.js")).status_code == 404


# ------------------------------------------------------------------------------------------- the default


REPO = Path(__file__).resolve().parents[2]


def test_the_image_names_no_default_model():
    # (make run's choice, the flag or LSTM_SERVICE_DEFAULT_MODEL, is run through `make -n` in
    # tests/training/test_first_hour_training.py)
    # the image names none: a user's store mounted over /models need not hold news-topic
    assert "LSTM_SERVICE_DEFAULT_MODEL=" not in (REPO / "Dockerfile").read_text(encoding="utf-8")


def test_the_log_says_which_model_is_the_default_and_why(tiny_store: Path, caplog):
    from service.engine.registry import Registry

    with caplog.at_level(logging.INFO, logger="service.engine.registry"):
        Registry(tiny_store, default_model="tiny-zh").load_all()
        Registry(tiny_store).load_all()
    assert "default model: tiny-zh (set by --default-model or LSTM_SERVICE_DEFAULT_MODEL)" in caplog.text
    assert "default model: tiny-en, the first of the store's models alphabetically" in caplog.text


def test_no_message_prints_python_none(store_copy: Path, caplog):
    from service.engine.registry import Registry

    registry = Registry(store_copy)
    registry.load_all()
    with caplog.at_level(logging.INFO, logger="service.engine.registry"):
        missing = registry.reload("nope")
        registry.unload("tiny-zh")
        for version in ("1", "2"):
            shutil.rmtree(store_copy / "tiny-en" / version, ignore_errors=True)
        gone = registry.reload("tiny-en")
    assert missing.missing and gone.missing
    assert "None" not in caplog.text and "None" not in (registry.status("tiny-en").reason or "")


async def test_when_no_version_passes_the_newest_fault_comes_first(store_copy: Path, start_app: StartApp):
    _break(add_version(store_copy, "tiny-en", 2))
    _break(store_copy / "tiny-en" / "1")
    async with start_app(Settings(model_store=store_copy)) as client:
        ready = await client.get("/readyz")
    model = ready.json()["models"]["tiny-en"]
    assert ready.status_code == 503 and model["state"] == "failed" and model["version"] == 2
    assert model["reason"].startswith("checksum mismatch for tokenizer.json")
    assert "(no older version passes either: version 1: checksum mismatch" in model["reason"]
