"""Fixtures for the service tests: the real app over the real tiny bundles (``tiny_store``), no mocks.

``client`` is one app with its real lifespan, shared by the whole session (loading is the slow part);
tests that need another store or other settings build their own with :func:`running_app`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.api.app import create_app
from service.bundle import sha256_file
from service.settings import Settings


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of a freshly started app (lifespan run, models loaded and verified)."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


@pytest.fixture(scope="session")
def start_app() -> Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with start_app(settings) as client``: a private app, for other stores or settings."""
    return running_app


@pytest.fixture(scope="session")
def service_settings(tiny_store: Path) -> Settings:
    return Settings(model_store=tiny_store)


@pytest.fixture(scope="session")
async def client(service_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(service_settings) as client:
        yield client


@pytest.fixture
def store_copy(tiny_store: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny store, free to damage."""
    return Path(shutil.copytree(tiny_store, tmp_path / "store"))


ManifestEdit = Callable[[dict[str, Any]], None]


def _rewrite_manifest(
    bundle: Path, edit: ManifestEdit | None = None, *, refresh_checksums: bool = False
) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    if edit is not None:
        edit(manifest)
    if refresh_checksums:  # lets deliberately damaged payload files pass the checksum step
        manifest["files"] = {name: sha256_file(bundle / name) for name in manifest["files"]}
    (bundle / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


@pytest.fixture
def rewrite_manifest() -> Callable[..., None]:
    """``rewrite_manifest(bundle, edit=None, refresh_checksums=False)``: edit a bundle's manifest in place."""
    return _rewrite_manifest
