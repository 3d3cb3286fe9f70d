"""Hot reload through the admin routes, in process: auth, load/pin/unload, no request lost under load,
and every kind of damaged bundle refused while the old version keeps serving."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.apps import ADMIN, ADMIN_TOKEN, failed_reloads
from support.stores import GRAPHS, add_version, refresh_checksums

from service.api.native.schemas import AdminModelResponse, LoadFailedResponse, ModelDetailResponse
from service.settings import Settings

pytestmark = pytest.mark.anyio
UNAUTHORIZED = {  # the same for a missing and a wrong token; it names the header that carries one
    "error": "unauthorized: send the admin token in the header "
    "'Authorization: Bearer <LSTM_SERVICE_ADMIN_TOKEN>'",
    "error_type": "unauthorized",
}


@pytest.fixture
async def admin_client(store_copy: Path, start_app: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with start_app(Settings(model_store=store_copy, admin_token=ADMIN_TOKEN)) as client:
        yield client


async def _load(client: httpx.AsyncClient, name: str, body: Any = None) -> httpx.Response:
    return await client.post(f"/admin/models/{name}/load", json=body, headers=ADMIN)


# -- authentication ---------------------------------------------------------------------------------


async def test_admin_routes_do_not_exist_without_a_token(
    store_copy: Path, start_app: Callable[..., Any]
) -> None:
    async with start_app(Settings(model_store=store_copy)) as client:
        response = await client.post("/admin/models/tiny-en/load", headers=ADMIN)

    assert response.status_code == 404
    assert response.json()["error_type"] == "not_found"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        {"X-API-Key": ADMIN_TOKEN},
        {"Authorization": "Bearer \u00e9\u00e9"},
    ],
    ids=["none", "wrong", "longer", "basic scheme", "no scheme", "api key header", "latin-1"],
)
async def test_a_missing_or_wrong_token_gets_401_without_details(
    admin_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    encoded = {key: value.encode("latin-1") for key, value in headers.items()}
    for path in ("/admin/models/tiny-en/load", "/admin/models/tiny-en/unload"):
        response = await admin_client.post(path, headers=encoded)

        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await admin_client.post("/classify", json={"text": "goal"})).json()["version"] == 1


# -- load, pin, unload ------------------------------------------------------------------------------


async def test_load_pins_a_given_version_and_unpins_without_one(
    admin_client: httpx.AsyncClient, store_copy: Path
) -> None:
    add_version(store_copy, "tiny-en", 2)

    pinned = await _load(admin_client, "tiny-en", {"version": 1})
    assert pinned.status_code == 200
    assert AdminModelResponse.model_validate(pinned.json()).pinned
    detail = (await admin_client.get("/models/tiny-en")).json()
    assert (pinned.json()["version"], detail["version"], detail["pinned"]) == (1, 1, True)

    newest = await _load(admin_client, "tiny-en")  # no body: the highest version, unpinned

    assert newest.status_code == 200
    assert (newest.json()["version"], newest.json()["pinned"]) == (2, False)
    answer = (await admin_client.post("/classify", json={"text": "goal"})).json()
    assert (answer["model"], answer["version"]) == ("tiny-en", 2)


async def test_a_version_that_is_not_in_the_store_is_404_and_changes_nothing(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await _load(admin_client, "tiny-en", {"version": 9})

    assert response.status_code == 404
    body = LoadFailedResponse.model_validate(response.json())
    assert (body.error_type.value, body.version, body.serving_version) == ("not_found", 9, 1)
    assert (await _load(admin_client, "ghost")).status_code == 404
    assert (await admin_client.get("/models/ghost")).status_code == 404  # a failed load adds no model


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/models/tiny-en/load", {"version": 0}),
        ("/admin/models/tiny-en/load", {"version": "2"}),
        ("/admin/models/tiny-en/load", {"versions": 2}),
        ("/admin/models/tiny-en/load", [1]),
        ("/admin/models/..%2F..%2Fetc/load", None),
        ("/admin/models/-x/unload", None),
    ],
)
async def test_bad_admin_requests_get_a_4xx(admin_client: httpx.AsyncClient, path: str, body: Any) -> None:
    response = await admin_client.post(path, json=body, headers=ADMIN)

    assert 400 <= response.status_code < 500
    assert set(response.json()) >= {"error", "error_type"}


async def test_unload_then_load_again(admin_client: httpx.AsyncClient) -> None:
    unloaded = await admin_client.post("/admin/models/tiny-zh/unload", headers=ADMIN)

    assert unloaded.status_code == 200
    assert unloaded.json() | {"load_seconds": None} == {
        "model": "tiny-zh",
        "state": "unloaded",
        "version": 1,
        "pinned": False,
        "reason": None,
        "load_seconds": None,
        "workers": {"applied": 1, "of": 1},
    }
    gone = await admin_client.post("/classify", json={"text": "很好", "model": "tiny-zh"})
    assert gone.status_code == 404
    assert [model["name"] for model in (await admin_client.get("/models")).json()["models"]] == ["tiny-en"]
    assert (await admin_client.get("/readyz")).status_code == 200  # an unloaded model is not expected
    assert (await admin_client.post("/admin/models/tiny-zh/unload", headers=ADMIN)).status_code == 404

    assert (await _load(admin_client, "tiny-zh")).status_code == 200
    back = await admin_client.post("/classify", json={"text": "很好", "model": "tiny-zh"})
    assert (back.status_code, back.json()["version"]) == (200, 1)


async def test_the_configured_default_model_cannot_be_unloaded(
    store_copy: Path, start_app: Callable[..., Any]
) -> None:
    settings = Settings(model_store=store_copy, admin_token=ADMIN_TOKEN, default_model="tiny-zh")
    async with start_app(settings) as client:
        response = await client.post("/admin/models/tiny-zh/unload", headers=ADMIN)

    assert response.status_code == 422
    assert "default model" in response.json()["error"]


# -- under load -------------------------------------------------------------------------------------


class _Traffic:
    """``clients`` coroutines classifying in a loop; each remembers (started, finished, status, version)."""

    def __init__(self, client: httpx.AsyncClient, clients: int = 4) -> None:
        self.client, self.stopping = client, asyncio.Event()
        self.answers: list[list[tuple[float, float, int, int | None]]] = [[] for _ in range(clients)]
        self.tasks = [asyncio.create_task(self._loop(answers)) for answers in self.answers]

    async def _loop(self, answers: list[tuple[float, float, int, int | None]]) -> None:
        for _ in range(20_000):  # bounded
            if self.stopping.is_set():
                return
            started = time.monotonic()
            response = await self.client.post("/classify", json={"texts": ["goal team", "soup chef"]})
            version = response.json().get("version") if response.status_code == 200 else None
            answers.append((started, time.monotonic(), response.status_code, version))

    def count(self) -> int:
        return sum(map(len, self.answers))

    async def wait_for(self, more: int, deadline_seconds: float = 30) -> None:
        target, deadline = self.count() + more, time.monotonic() + deadline_seconds
        while self.count() < target:
            assert time.monotonic() < deadline, f"only {self.count()} answers within {deadline_seconds} s"
            await asyncio.sleep(0.01)

    async def stop(self) -> list[tuple[float, float, int, int | None]]:
        self.stopping.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 60)
        return sorted(answer for answers in self.answers for answer in answers)


async def test_a_reload_under_load_loses_nothing_and_swaps_once(
    admin_client: httpx.AsyncClient, store_copy: Path
) -> None:
    add_version(store_copy, "tiny-en", 2)
    traffic = _Traffic(admin_client)
    await traffic.wait_for(20)

    asked = time.monotonic()
    response = await _load(admin_client, "tiny-en", {"version": 2})
    swapped = time.monotonic()
    await traffic.wait_for(20)
    answers = await traffic.stop()

    assert response.status_code == 200 and response.json()["version"] == 2
    failed = [answer for answer in answers if answer[2] != 200]
    during = [version for _, finished, _, version in answers if asked < finished < swapped]
    print(f"reload under load: {len(answers)} requests, {len(failed)} failed, {len(during)} answered while")
    print(f"the new version was loaded and verified ({swapped - asked:.3f} s), by versions {set(during)}")
    assert failed == []
    # The old version answered until the new one was verified; nothing started after the swap saw it.
    assert {version for started, finished, _, version in answers if finished < asked} == {1}
    assert {version for started, _, _, version in answers if started > swapped} == {2}
    for client_answers in traffic.answers:  # each client sees 1...1 then 2...2: one atomic swap
        versions = [version for *_, version in client_answers]
        assert versions == sorted(versions)


async def test_a_refused_reload_under_load_keeps_the_old_version_serving(
    admin_client: httpx.AsyncClient, store_copy: Path
) -> None:
    bundle = add_version(store_copy, "tiny-en", 2)
    (bundle / "labels.json").write_text('["sport", "food", "tech"]', encoding="utf-8")  # checksum mismatch
    traffic = _Traffic(admin_client)
    await traffic.wait_for(20)

    response = await _load(admin_client, "tiny-en", {"version": 2})
    await traffic.wait_for(20)
    answers = await traffic.stop()

    assert response.status_code == 422
    assert [answer for answer in answers if answer[2] != 200] == []
    assert {answer[3] for answer in answers} == {1}


# -- damaged bundles --------------------------------------------------------------------------------


def _bad_checksum(store: Path, tmp: Path) -> None:
    bundle = add_version(store, "tiny-en", 2)
    (bundle / "labels.json").write_text('["a", "b", "c"]', encoding="utf-8")


def _truncated_onnx(store: Path, tmp: Path) -> None:
    bundle = add_version(store, "tiny-en", 2)
    data = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data[: len(data) // 2])
    refresh_checksums(bundle)  # past the checksum: onnxruntime itself must refuse it


def _missing_file(store: Path, tmp: Path) -> None:
    (add_version(store, "tiny-en", 2) / "tokenizer.json").unlink()


def _malformed_manifest(store: Path, tmp: Path) -> None:
    (add_version(store, "tiny-en", 2) / "manifest.json").write_text('{"name": "tiny-en", ', encoding="utf-8")


def _wrong_graph_inputs(store: Path, tmp: Path) -> None:
    add_version(store, "tiny-en", 2, onnx_path=GRAPHS / "other-inputs.onnx")


DAMAGES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "bad checksum": (
        _bad_checksum,
        "checksum mismatch for labels.json: the file was changed after the bundle was written",
    ),
    "truncated onnx": (_truncated_onnx, "onnxruntime could not load model.onnx"),
    "missing file": (_missing_file, "missing file tokenizer.json"),
    "malformed manifest": (_malformed_manifest, "manifest.json is not valid JSON"),
    "wrong graph inputs": (_wrong_graph_inputs, "graph inputs are {'input_ids': 'tensor(int64)'"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
async def test_a_damaged_version_is_refused_and_the_old_one_keeps_serving(
    admin_client: httpx.AsyncClient, store_copy: Path, tmp_path: Path, damage: str
) -> None:
    make_damage, expected_reason = DAMAGES[damage]
    make_damage(store_copy, tmp_path)
    failed_before = await failed_reloads(admin_client, "tiny-en", 2)

    response = await _load(admin_client, "tiny-en", {"version": 2})

    assert response.status_code == 422, response.text
    refused = LoadFailedResponse.model_validate(response.json())
    assert (refused.error_type.value, refused.version, refused.serving_version) == ("invalid_bundle", 2, 1)
    assert expected_reason in refused.error
    assert str(store_copy) not in refused.error and "Traceback" not in refused.error
    detail = ModelDetailResponse.model_validate((await admin_client.get("/models/tiny-en")).json())
    assert (detail.state.value, detail.version, detail.versions) == ("ready", 1, [1, 2])
    assert detail.reason is not None and expected_reason in detail.reason
    answer = await admin_client.post("/classify", json={"text": "goal"})
    assert (answer.status_code, answer.json()["version"]) == (200, 1)
    assert (await admin_client.get("/readyz")).status_code == 200
    assert await failed_reloads(admin_client, "tiny-en", 2) == failed_before + 1
