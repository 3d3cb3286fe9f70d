"""Fixtures of the prediction log's tests: a sink URL for SQLite (a file) or PostgreSQL (a schema of its
own on the project's server, dropped afterwards). Without a reachable PostgreSQL the PostgreSQL cases skip,
except under CI (``CI`` set), where they fail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

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
