"""Fixtures for the explanation, drift and inspector tests: the real app over the committed default models.

``default_client`` serves ``model_store/`` (the Chinese review model and the news model) in process, with
its real lifespan; :mod:`inspector_server` starts the same store as a real ``python -m service serve``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.api.app import create_app
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STORE = REPO / "model_store"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serve_in_process(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service", timeout=60) as client:
            yield client


@pytest.fixture(scope="session")
def default_settings() -> Settings:
    return Settings(model_store=DEFAULT_STORE, default_model="review-sentiment-zh")


@pytest.fixture(scope="session")
async def default_client(default_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(default_settings) as client:
        yield client


@pytest.fixture(scope="session")
def in_process() -> object:
    """``async with in_process(settings) as client``: a private app for other settings."""
    return serve_in_process
