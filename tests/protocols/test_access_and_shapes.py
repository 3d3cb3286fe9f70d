"""Who may call which protocol route, and the JSON shapes the kserve client sends and reads.

With an API key set, the model, inference, statistics and TEI routes need it, exactly as /classify does;
``/v2`` and ``/v2/health/*`` stay open like ``/livez``. The repository routes need the admin token and do
not exist without one, like ``/admin``. (The kserve client itself was not installed: its shapes are
written out here: ``model_name`` and a generated ``id`` in every infer body, ``live``/``ready`` keys read
from the health answers.)"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from protocol_support import ADMIN, KEY
from support.apps import running_app

from service import lifecycle
from service.settings import Settings

pytestmark = pytest.mark.anyio
TEXT = {"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": ["goal"]}
GUARDED = [
    ("GET", "/v2/models/tiny-en", None),
    ("GET", "/v2/models/tiny-en/versions/1", None),
    ("GET", "/v2/models/tiny-en/ready", None),
    ("GET", "/v2/models/tiny-en/config", None),
    ("GET", "/v2/models/tiny-en/stats", None),
    ("GET", "/v2/models/stats", None),
    ("POST", "/v2/models/tiny-en/infer", {"inputs": [TEXT]}),
    ("POST", "/v2/models/tiny-en/versions/1/infer", {"inputs": [TEXT]}),
    ("POST", "/predict", {"inputs": "goal"}),
    ("POST", "/", {"inputs": "goal"}),
    ("GET", "/info", None),
]
OPEN = ["/v2", "/v2/health/live", "/v2/health/ready"]
REPOSITORY = [
    "/v2/repository/index",
    "/v2/repository/models/tiny-zh/load",
    "/v2/repository/models/tiny-zh/unload",
]


@pytest.mark.parametrize(("method", "path", "body"), GUARDED)
async def test_guarded_routes_need_the_api_key(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    without = await client.request(method, path, json=body, headers={"Authorization": "Bearer wrong"})
    assert without.status_code == 401
    assert without.json()["error_type"] == "unauthorized"
    assert "'X-API-Key: <key>'" in without.json()["error"]  # the answer names the header expected
    with_key = await client.request(method, path, json=body, headers={"X-API-Key": KEY["Authorization"][7:]})
    assert with_key.status_code == 200, with_key.text


@pytest.mark.parametrize("path", OPEN)
async def test_server_metadata_and_health_stay_open(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path, headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 200


@pytest.mark.parametrize("path", REPOSITORY)
async def test_repository_routes_need_the_admin_token(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.post(path)  # the client sends the API key: not enough
    assert answer.status_code == 401 and answer.json()["error_type"] == "unauthorized"


async def test_repository_routes_do_not_exist_without_an_admin_token(tiny_store: Path) -> None:
    async with running_app(Settings(model_store=tiny_store)) as client:
        for path in REPOSITORY:
            answer = await client.post(path, headers=ADMIN)
            assert answer.status_code == 404 and answer.json()["error_type"] == "not_found"
        assert (await client.post("/v2/models/tiny-en/infer", json={"inputs": [TEXT]})).status_code == 200


async def test_repository_index_and_load_refusals(client: httpx.AsyncClient) -> None:
    index = (await client.post("/v2/repository/index", headers=ADMIN, json={"ready": True})).json()
    assert [entry["name"] for entry in index] == ["tiny-en", "tiny-zh"]
    assert index[0] == {"name": "tiny-en", "state": "READY", "reason": "", "version": "1"}
    config = {"parameters": {"config": '{"max_batch_size": 8}'}}
    answer = await client.post("/v2/repository/models/tiny-zh/load", headers=ADMIN, json=config)
    assert answer.status_code == 422 and "not supported" in answer.json()["error"]
    answer = await client.post("/v2/repository/models/nope/load", headers=ADMIN)
    assert answer.status_code == 404 and "error" in answer.json()
    answer = await client.post("/v2/repository/models/tiny-en/unload", headers=ADMIN)
    assert answer.status_code == 422 and "default model" in answer.json()["error"]


async def test_the_kserve_client_request_shape(client: httpx.AsyncClient) -> None:
    request_id = str(uuid.uuid4())
    body = {
        "model_name": "tiny-en",
        "id": request_id,
        "inputs": [{"name": "TEXT", "shape": [1], "datatype": "BYTES", "data": ["goal"], "parameters": {}}],
    }
    answer = await client.post("/v2/models/tiny-en/infer", json=body)
    assert answer.status_code == 200
    result = answer.json()
    assert result["id"] == request_id and result["model_name"] == "tiny-en" and result["model_version"] == "1"
    outputs = {output["name"]: output for output in result["outputs"]}
    assert set(outputs) == {"PROBS", "LOGITS", "LABEL", "HIDDEN_STATES", "H_N", "C_N"}
    assert outputs["LABEL"] == {"name": "LABEL", "datatype": "BYTES", "shape": [1], "data": ["sport"]}
    assert outputs["PROBS"]["shape"] == [1, 3] and len(outputs["PROBS"]["data"]) == 3


async def test_health_bodies_carry_live_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True, "ready": True}
    assert (await client.get("/v2/health/ready")).json() == {"live": True, "ready": True}
    assert (await client.get("/v2/models/tiny-en/ready")).json() == {"name": "tiny-en", "ready": True}
    assert (await client.get("/v2/models/nope/ready")).status_code == 404


async def test_readiness_follows_readyz_while_draining(client: httpx.AsyncClient) -> None:
    lifecycle.begin_draining()
    try:
        ready = await client.get("/v2/health/ready")
        assert ready.status_code == 503 == (await client.get("/readyz")).status_code
        assert ready.json()["ready"] is False and ready.json()["live"] is True
        assert ready.json()["error_type"] == "unavailable"
        assert (await client.get("/v2/health/live")).status_code == 200
    finally:
        lifecycle.reset()
    assert (await client.get("/v2/health/ready")).status_code == 200
