"""A real ``--workers 2`` server: the canary split over 10,000 keys, promote and roll back under load with
no failed request, and a change made by the ``lstm-service`` command (the file alone) reaching every
worker within one poll interval."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.live_server import REPO, LiveServer
from support.stores import add_version

TOKEN = "rollout-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
POLL_SECONDS = 0.5


@pytest.fixture
def server(store_copy: Path, tmp_path: Path) -> Iterator[LiveServer]:
    add_version(store_copy, "tiny-en", 2)
    live = LiveServer.start(
        store_copy,
        tmp_path / "server.log",
        ["--workers", "2", "--default-model", "tiny-en", "--rollout-poll-seconds", str(POLL_SECONDS)],
        env={"LSTM_SERVICE_ADMIN_TOKEN": TOKEN, "LSTM_SERVICE_PINNED": "tiny-en=1"},
    )
    try:
        yield live
    finally:
        live.kill()


class Client:
    """One keep-alive connection (what a real client pool does)."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def classify(self, text: str, key: str | None = None) -> tuple[int, dict[str, object]]:
        headers = {"Content-Type": "application/json", **({"X-Routing-Key": key} if key else {})}
        self.connection.request("POST", "/classify", body=json.dumps({"text": text}), headers=headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())


def _versions_by_key(port: int, keys: list[str]) -> dict[str, int]:
    def run(chunk: list[str]) -> dict[str, int]:
        client = Client(port)
        found = {}
        for key in chunk:
            status, body = client.classify("pizza pasta", key)
            assert status == 200, body
            found[key] = body["version"]
        return found

    chunks = [keys[index::8] for index in range(8)]
    with ThreadPoolExecutor(8) as pool:
        return {key: version for part in pool.map(run, chunks) for key, version in part.items()}


def test_a_20_percent_canary_takes_18_to_22_percent_of_10000_keys_and_a_key_keeps_its_version(
    server: LiveServer,
) -> None:
    answer = server.call(
        "PUT", "/admin/models/tiny-en/aliases/canary", {"version": 2, "weight": 20}, headers=ADMIN
    )
    assert answer.status == 200, answer.body
    assert answer.body["workers"] == {"applied": 2, "of": 2}
    keys = [f"customer-{index}" for index in range(10_000)]
    versions = _versions_by_key(server.port, keys)
    share = sum(1 for version in versions.values() if version == 2) / len(keys)
    assert 0.18 <= share <= 0.22, share
    again = _versions_by_key(server.port, keys[:1000])
    assert again == {key: versions[key] for key in keys[:1000]}


class Load:
    """Clients classifying without pause; every answer's status, version, and when it was sent."""

    def __init__(self, port: int, clients: int = 4) -> None:
        self.port = port
        self.answers: list[tuple[float, int, object]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(index,)) for index in range(clients)]

    def _run(self, index: int) -> None:
        client = Client(self.port)
        count = 0
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                status, body = client.classify(f"pizza pasta number {index} {count}")
            except Exception as error:  # noqa: BLE001 - any failure is the test's finding
                self.errors.append(repr(error))
                client = Client(self.port)
                continue
            self.answers.append((sent, status, body.get("version")))
            count += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def test_promote_then_rollback_under_load_fails_nothing_and_every_worker_follows(server: LiveServer) -> None:
    with Load(server.port) as load:
        time.sleep(1.0)
        promoted = server.call(
            "POST", "/admin/models/tiny-en/promote", {"version": 2, "by": "ci"}, headers=ADMIN
        )
        promoted_at = time.monotonic()
        assert promoted.status == 200, promoted.body
        assert promoted.body["workers"] == {"applied": 2, "of": 2}
        time.sleep(1.5)
        rollback_sent = time.monotonic()
        rolled = server.call("POST", "/admin/models/tiny-en/rollback", {"by": "ci"}, headers=ADMIN)
        rolled_at = time.monotonic()
        assert rolled.status == 200, rolled.body
        assert rolled.body["workers"] == {"applied": 2, "of": 2}
        time.sleep(1.5)
    assert load.errors == []
    assert all(status == 200 for _, status, _ in load.answers), {s for _, s, _ in load.answers}
    assert all(version in (1, 2) for _, _, version in load.answers)
    between = [version for sent, _, version in load.answers if promoted_at < sent < rollback_sent]
    after = [version for sent, _, version in load.answers if sent > rolled_at]
    before = [version for sent, _, version in load.answers if sent < promoted_at - 1.0]
    assert before and set(before) == {1}
    assert len(between) > 50 and set(between) == {2}
    assert len(after) > 50 and set(after) == {1}
    history = server.call("GET", "/models/tiny-en").body["rollout"]["history"]
    assert [(c["action"], c["from"], c["to"], c["who"]) for c in history] == [
        ("promote", 1, 2, "ci"),
        ("rollback", 2, 1, "ci"),
    ]


def test_a_promotion_by_the_command_reaches_every_worker_within_a_poll_interval(
    server: LiveServer, store_copy: Path
) -> None:
    command = [sys.executable, "-m", "service", "promote", "tiny-en", "2", "--model-store", str(store_copy)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "stable -> version 2" in done.stdout
    changed_at = time.monotonic()
    time.sleep(POLL_SECONDS + 0.3)  # one interval, and the time to load version 2 beside version 1
    clients = [Client(server.port) for _ in range(8)]  # eight connections: both workers answer
    versions = {client.classify(f"soup {index}")[1]["version"] for index, client in enumerate(clients)}
    versions |= {Client(server.port).classify(f"goal {index}")[1]["version"] for index in range(40)}
    assert versions == {2}, (versions, time.monotonic() - changed_at)
    bad = subprocess.run(
        [*command[:4], "tiny-en", "7", "--model-store", str(store_copy)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "no version 7" in bad.stderr
