"""LSTM_SERVICE_MAX_LOADED_MODELS: many models in bounded memory. The pinned and default models load at
start and are never evicted; the others load on their first request, which waits for the load; the least
recently used is evicted when another must load; /models, /readyz and /metrics say what is loaded or
evicted. Concurrent clients spread over every model all get answers."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support.apps import parse_metrics, started_app

from service.engine.registry import ModelState, Registry
from service.settings import Settings

pytestmark = pytest.mark.anyio
COPIES = 14
BUDGET = 4
CLIENTS = 20
REQUESTS_PER_CLIENT = 12


@pytest.fixture
def many_models(tiny_store: Path, tmp_path: Path, rewrite_manifest: Callable[..., None]) -> Path:
    store = Path(shutil.copytree(tiny_store, tmp_path / "store"))
    for index in range(COPIES):
        name = f"customer-{index:02d}"
        target = Path(shutil.copytree(store / "tiny-en" / "1", store / name / "1"))
        rewrite_manifest(target, lambda manifest, name=name: manifest.update(name=name))
    return store


def _loaded(registry: Registry) -> set[str]:
    return {name for name, status in registry.statuses().items() if status.state is ModelState.ready}


async def test_many_models_under_a_budget_all_answer_and_memory_stays_bounded(many_models: Path) -> None:
    settings = Settings(
        model_store=many_models, max_loaded_models=BUDGET, default_model="tiny-en", pinned="tiny-zh=1"
    )
    names = [f"customer-{index:02d}" for index in range(COPIES)] + ["tiny-en", "tiny-zh"]
    async with started_app(settings) as (app, client):
        registry: Registry = app.state.services.registry
        at_start = _loaded(registry)
        listed = {model["name"]: model["state"] for model in (await client.get("/models")).json()["models"]}
        ready_at_start = (await client.get("/readyz")).status_code
        most_loaded = len(at_start)

        async def one_client(number: int) -> list[int]:
            nonlocal most_loaded
            statuses = []
            for request in range(REQUESTS_PER_CLIENT):
                model = names[(number * 7 + request * 3) % len(names)]
                answer = await client.post("/classify", json={"text": "the cup match", "model": model})
                statuses.append(answer.status_code)
                if answer.status_code == 200:
                    assert answer.json()["model"] == model
                most_loaded = max(most_loaded, len(_loaded(registry)))
            return statuses

        answers = await asyncio.gather(*(one_client(number) for number in range(CLIENTS)))
        after = _loaded(registry)
        metrics = parse_metrics((await client.get("/metrics")).text)
        ready_after = (await client.get("/readyz")).json()

    assert len(at_start) == BUDGET and {"tiny-en", "tiny-zh"} <= at_start  # default and pinned first
    assert listed["customer-13"] == "evicted" and listed["tiny-zh"] == "ready"
    assert ready_at_start == 200  # an evicted model is not a failed one
    assert [status for statuses in answers for status in statuses] == [200] * CLIENTS * REQUESTS_PER_CLIENT
    assert most_loaded <= BUDGET and len(after) <= BUDGET
    assert {"tiny-en", "tiny-zh"} <= after  # never evicted
    evictions = sum(
        value for (name, _), value in metrics.items() if name == "lstm_service_model_evictions_total"
    )
    lazy_loads = sum(
        value
        for (name, labels), value in metrics.items()
        if name == "lstm_service_model_loads_total"
        and ("kind", "lazy") in labels
        and ("outcome", "loaded") in labels
    )
    assert evictions >= COPIES - BUDGET and lazy_loads >= COPIES
    evicted_series = [labels for (name, labels) in metrics if name == "lstm_service_model_ready"]
    assert any(("state", "evicted") in labels for labels in evicted_series)
    assert ready_after["status"] == "ready"


async def test_without_a_budget_every_model_loads_at_start(many_models: Path) -> None:
    async with started_app(Settings(model_store=many_models)) as (app, _):
        assert len(_loaded(app.state.services.registry)) == COPIES + 2


def test_the_least_recently_used_unprotected_model_is_evicted(many_models: Path) -> None:
    registry = Registry(many_models, default_model="tiny-en", max_loaded=3)
    registry.load_all()
    assert _loaded(registry) == {"tiny-en", "customer-00", "customer-01"}  # the default, then by name
    registry.get("customer-00")  # used: customer-01 is now the least recently used
    registry.ensure_loaded("customer-05")
    assert _loaded(registry) == {"tiny-en", "customer-00", "customer-05"}
    status = registry.status("customer-01")
    assert status.state is ModelState.evicted and "least recently used" in (status.reason or "")
    registry.get("tiny-en")
    registry.get("customer-05")
    registry.ensure_loaded("customer-09")  # tiny-en is the default: customer-00 goes, not it
    assert _loaded(registry) == {"tiny-en", "customer-05", "customer-09"}
    assert registry.is_ready("all")
