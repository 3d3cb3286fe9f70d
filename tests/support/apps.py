"""The real app in process, with its real lifespan (models loaded and verified), behind an httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager

from service.api.app import create_app
from service.settings import Settings

ADMIN_TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of a freshly started app (lifespan run, models loaded and verified)."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service", timeout=30) as client:
            yield client


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
