"""Fixtures of the prediction log's tests: a sink URL for SQLite (a file) or PostgreSQL (a schema of its
own on the project's server, dropped afterwards). Without a reachable PostgreSQL the PostgreSQL cases skip,
except under CI (``CI`` set), where they fail."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_SERVER = os.environ.get("LSTM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg

    try:
        return psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL at {PG_SERVER}: {error}")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema on the test server; yields its name, drops it (and ends its sessions) afterwards."""
    schema = f"predlog_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with _admin_connection() as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_url(schema: str) -> str:
    return f"{PG_SERVER}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'predictions.db'}"
    return pg_url(request.getfixturevalue("pg_schema"))
