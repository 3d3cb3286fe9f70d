"""Fixtures for the service tests: the real app over the real tiny bundles (``tiny_store``), no mocks.

``client`` is one app with its real lifespan, shared by the whole session (loading is the slow part);
tests that need another store or other settings build their own with ``start_app`` (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from support.apps import running_app
from support.stores import rewrite_manifest as _rewrite_manifest

from service.settings import Settings


@pytest.fixture(scope="session")
def service_settings(tiny_store: Path) -> Settings:
    return Settings(model_store=tiny_store)


@pytest.fixture(scope="session")
async def client(service_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(service_settings) as client:
        yield client


@pytest.fixture
def rewrite_manifest() -> Callable[..., None]:
    """``rewrite_manifest(bundle, edit=None, refresh_checksums=False)``: edit a bundle's manifest in place."""
    return _rewrite_manifest
