"""The real app in process, with its real lifespan (models loaded and verified), behind an httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from service.api.app import create_app
from service.settings import Settings

ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@asynccontextmanager
async def started_app(
    settings: Settings, *, startup_seconds: float = 60, request_seconds: float = 30, hot_routes: bool = True
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A freshly started app (lifespan run, models loaded and verified) and an in-process client of it.

    ``startup_seconds`` bounds loading and verifying the store, ``request_seconds`` each request;
    ``hot_routes=False`` leaves every request to FastAPI's routes."""
    app = create_app(settings, hot_routes=hot_routes)
    async with LifespanManager(app, startup_timeout=startup_seconds, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://service", timeout=request_seconds
        ) as client:
            yield app, client


@asynccontextmanager
async def running_app(
    settings: Settings, *, startup_seconds: float = 60, request_seconds: float = 30, hot_routes: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of a freshly started app (lifespan run, models loaded and verified)."""
    options = {"startup_seconds": startup_seconds, "request_seconds": request_seconds}
    async with started_app(settings, **options, hot_routes=hot_routes) as (_, client):
        yield client


Series = tuple[str, frozenset[tuple[str, str]]]


def parse_metrics(metrics_text: str) -> dict[Series, float]:
    """Every sample of a Prometheus text exposition: ``{(name, frozenset(labels.items())): value}``."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    }


def series(name: str, **labels: str) -> Series:
    """The key of one series in :func:`parse_metrics`'s answer: ``series("x_total", model="tiny-en")``."""
    return name, frozenset(labels.items())


def metric_value(metrics_text: str, name: str, labels: str = "") -> float:
    """The value of one series in a Prometheus text exposition (0 when absent: counters start unseen).

    ``labels`` is the label set as exposed, e.g. ``'model="tiny-en",version="1"'``."""
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    line = next((line for line in metrics_text.splitlines() if line.startswith(prefix)), None)
    return float(line.split()[-1]) if line else 0.0


async def failed_reloads(client: httpx.AsyncClient, model: str, version: int) -> float:
    """Failed reloads of ``model`` ``version`` counted so far (metrics are per process: compare counts)."""
    metrics = (await client.get("/metrics")).text
    labels = f'kind="reload",model="{model}",outcome="failed",version="{version}"'
    return metric_value(metrics, "lstm_service_model_loads_total", labels)
