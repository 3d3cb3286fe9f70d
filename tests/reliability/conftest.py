"""Fixtures for the reliability tests: private copies of the tiny store and in-process apps with their
real lifespan. Helpers live in :mod:`reliability_support`, live servers in :mod:`live_server`."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliability_support import running_app


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store_copy(tiny_store: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny store, free to add versions to and to damage."""
    return Path(shutil.copytree(tiny_store, tmp_path / "store"))


@pytest.fixture(scope="session")
def start_app() -> Callable[..., Any]:
    return running_app
