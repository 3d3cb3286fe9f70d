"""With ``--workers 2``, an admin load, pin or unload is in effect in every worker once its answer is back:
no request after the answer sees the old state, whichever worker takes it (each call opens a new
connection, so both workers take calls). Other clients keep the server busy meanwhile."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.live_server import LiveServer, Refused
from support.stores import add_version, rewrite_manifest

pytestmark = pytest.mark.slow
TOKEN = "workers-agree-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(store_copy: Path, tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer.start(
        store_copy,
        tmp_path / "server.log",
        flags=["--workers", "2", "--default-model", "tiny-en"],
        env={"LSTM_SERVICE_ADMIN_TOKEN": TOKEN, "LSTM_SERVICE_RELOAD_INTERVAL_SECONDS": "0"},
    )
    try:
        yield live
    finally:
        live.kill()


@pytest.fixture
def busy(server: LiveServer) -> Iterator[list[int]]:
    """Two clients classifying with the default model the whole time; their status codes."""
    statuses: list[int] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                statuses.append(server.call("POST", "/classify", {"text": "the cup match"}).status)
            except (Refused, OSError):
                statuses.append(0)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def test_a_loaded_model_answers_in_every_worker_at_once(
    server: LiveServer, busy: list[int], store_copy: Path
):
    target = Path(shutil.copytree(store_copy / "tiny-zh" / "1", store_copy / "new-model" / "1"))
    rewrite_manifest(target, lambda manifest: manifest.update(name="new-model"))

    loaded = server.call("POST", "/admin/models/new-model/load", headers=ADMIN)

    assert loaded.status == 200, loaded.body
    answers = [server.call("POST", "/classify", {"model": "new-model", "text": "很好"}) for _ in range(200)]
    assert [answer.status for answer in answers if answer.status != 200] == []
    assert {answer.body["model"] for answer in answers} == {"new-model"}
    assert loaded.body["workers"] == {"applied": 2, "of": 2}
    assert busy and set(busy) == {200}


def test_a_pin_and_an_unload_hold_in_every_worker(server: LiveServer, busy: list[int], store_copy: Path):
    add_version(store_copy, "tiny-zh", 2)
    newest = server.call("POST", "/admin/models/tiny-zh/load", headers=ADMIN)
    assert newest.status == 200 and newest.body["version"] == 2
    versions = {
        server.call("POST", "/classify", {"model": "tiny-zh", "text": "很好"}).body["version"]
        for _ in range(50)
    }
    assert versions == {2}

    pinned = server.call("POST", "/admin/models/tiny-zh/load", {"version": 1}, headers=ADMIN)
    assert pinned.status == 200 and pinned.body["pinned"] is True
    versions = {
        server.call("POST", "/classify", {"model": "tiny-zh", "text": "很好"}).body["version"]
        for _ in range(50)
    }
    assert versions == {1}

    unloaded = server.call("POST", "/admin/models/tiny-zh/unload", headers=ADMIN)
    assert unloaded.status == 200
    statuses = {
        server.call("POST", "/classify", {"model": "tiny-zh", "text": "很好"}).status for _ in range(50)
    }
    assert statuses == {404}
    listed = [server.call("GET", "/models").body["models"] for _ in range(20)]
    assert all("tiny-zh" not in {model["name"] for model in models} for models in listed)
    assert [answer.body["workers"] for answer in (newest, pinned, unloaded)] == [{"applied": 2, "of": 2}] * 3
    assert busy and set(busy) == {200}
