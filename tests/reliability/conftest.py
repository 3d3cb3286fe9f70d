"""Fixtures for the reliability tests: private copies of the tiny store and in-process apps with their
real lifespan. Helpers live in the ``support`` package, live servers in :mod:`live_server`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.apps import running_app
from support.stores import copy_store


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store_copy(tiny_store: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny store, free to add versions to and to damage."""
    return copy_store(tiny_store, tmp_path / "store")


@pytest.fixture(scope="session")
def start_app() -> Callable[..., Any]:
    return running_app
