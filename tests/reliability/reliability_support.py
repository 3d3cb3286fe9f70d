"""Helpers shared by the reliability tests (a module with a unique name: ``conftest`` is ambiguous when
several test folders have one)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from service.api.app import create_app
from service.bundle import load_bundle, sha256_file, write_bundle
from service.settings import Settings

ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def add_version(store: Path, name: str, version: int, onnx_path: Path | None = None) -> Path:
    """A new, valid version of ``name`` (a copy of version 1 written by ``write_bundle``): its folder.

    ``onnx_path`` replaces the graph (checksums stay consistent: ``write_bundle`` computes them)."""
    original = load_bundle(store / name / "1")
    graph = onnx_path or original.model_path
    return write_bundle(store, name, graph, original.tokenizer, original.labels, original.manifest, version)


def refresh_checksums(bundle: Path) -> None:
    """Make the manifest's checksums match the files again (so a damaged file gets past that check)."""
    manifest_path = bundle / "manifest.json"
    manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["files"] = {file: sha256_file(bundle / file) for file in manifest["files"]}
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of a freshly started app (lifespan run, models loaded and verified)."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service", timeout=30) as client:
            yield client


async def failed_reloads(client: httpx.AsyncClient, model: str, version: int) -> float:
    """Failed reloads of ``model`` ``version`` counted so far (metrics are per process: compare counts)."""
    metrics = (await client.get("/metrics")).text
    labels = f'kind="reload",model="{model}",outcome="failed",version="{version}"'
    prefix = f"lstm_service_model_loads_total{{{labels}}} "
    line = next((line for line in metrics.splitlines() if line.startswith(prefix)), None)
    return float(line.split()[-1]) if line else 0.0
