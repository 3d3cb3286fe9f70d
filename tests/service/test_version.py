"""The version every answer reports is the installed package's, read once (``service.__version__``)."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
import tomllib

import service

REPO = Path(__file__).resolve().parents[2]


def test_the_package_version_is_pyprojects_read_through_the_metadata() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]

    assert service.__version__ == version("lstm-service") == declared


def test_no_module_under_service_spells_the_version_itself() -> None:
    literal = re.compile(rf"""["']{re.escape(service.__version__)}["']""")
    spelled = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "service").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]

    assert spelled == [], f"use service.__version__ instead of the literal at {spelled}"


@pytest.mark.anyio
async def test_openapi_oip_and_tei_answer_the_package_version(client: httpx.AsyncClient) -> None:
    openapi = (await client.get("/openapi.json")).json()
    server = (await client.get("/v2")).json()
    tei = (await client.get("/info")).json()

    assert openapi["info"]["version"] == server["version"] == tei["version"] == version("lstm-service")
