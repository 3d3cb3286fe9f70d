"""Fixtures of the prediction log's tests: a sink URL for SQLite (a file) or PostgreSQL (a schema of its
own on the project's server, dropped afterwards). Without a reachable PostgreSQL the PostgreSQL cases skip,
except under CI (``CI`` set), where they fail."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from learning_db import admin_connection, pg_url


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema on the test server; yields its name, drops it (and everything in it) afterwards."""
    schema = f"predlog_{uuid.uuid4().hex[:12]}"
    with admin_connection() as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with admin_connection() as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'predictions.db'}"
    return pg_url(request.getfixturevalue("pg_schema"))


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's chromium and chromedriver, tests/inspector/install-chromium.sh)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev group)")
    from selenium.webdriver.chrome.service import Service

    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("no chromium/chromedriver (run tests/inspector/install-chromium.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
