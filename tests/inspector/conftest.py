"""Fixtures for the explanation, drift and inspector tests: the real app over the committed default models.

``default_client`` serves ``model_store/`` (the Chinese review model and the news model) in process, with
its real lifespan; :mod:`inspector_server` starts the same store as a real ``python -m service serve``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from support.apps import running_app

from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STORE = REPO / "model_store"


# The default models take longer to load and to explain than the tiny fixtures.
serve_in_process = functools.partial(running_app, startup_seconds=120, request_seconds=60)


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
