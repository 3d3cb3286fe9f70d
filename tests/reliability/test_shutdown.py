"""SIGTERM under steady load on a real server: readiness says draining at once, requests keep being
answered through the drain window, a request still in flight when the listener closes is finished, no
accepted request fails, and the process exits 0. Once with one process, once with --workers 2."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path

import pytest
from live_server import LiveServer, Load, Reply
from reliability_support import add_version

DRAIN_SECONDS = 2.0
TEXTS = ["the striker scored a goal", "the chef made soup", "这个东西很好", "new laptop chip"]


def _request(number: int) -> tuple[str, str, dict[str, object]]:
    if number % 4 == 3:
        return "POST", "/hidden-states", {"text": TEXTS[number % len(TEXTS)]}
    return "POST", "/classify", {"texts": TEXTS[: 1 + number % len(TEXTS)]}


class _SlowRequest:
    """A request whose body arrives in two halves: it is in flight for as long as the test wants."""

    def __init__(self, port: int) -> None:
        self.body = json.dumps({"text": "the chef made soup " * 20}).encode()
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = (
            "POST /classify HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(self.body)}\r\n\r\n"
        )
        self.socket.sendall(head.encode() + self.body[:10])

    def finish(self) -> tuple[int, dict[str, object]]:
        self.socket.sendall(self.body[10:])
        response = http.client.HTTPResponse(self.socket)
        response.begin()
        status, answer = response.status, json.loads(response.read())
        self.socket.close()
        return status, answer


def _readiness_when_draining(server: LiveServer, deadline_seconds: float) -> Reply:
    """/readyz once it says draining: at once with one process; with --workers, uvicorn's supervisor
    checks for signals every 0.5 s before it passes SIGTERM on to the workers."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        ready = server.call("GET", "/readyz")
        if ready.status != 200 or time.monotonic() > deadline:
            assert (ready.status, ready.body["status"]) == (503, "draining"), ready
            return ready
        time.sleep(0.02)


def _sigterm_under_load(server: LiveServer) -> None:
    load = Load(server.port, _request, clients=4).start()
    try:
        load.wait_for(40, deadline_seconds=30)
        slow = _SlowRequest(server.port)

        server.terminate()
        signalled = time.monotonic()
        ready = _readiness_when_draining(server, deadline_seconds=1.5)
        assert ready.body["error_type"] == "unavailable" and ready.body["error"].startswith("draining")
        assert server.call("GET", "/livez").status == 200
        during = server.call("POST", "/classify", {"text": "goal"})
        assert during.status == 200 and during.headers["connection"] == "close"
        load.wait_for(len(load.outcomes) + 20, deadline_seconds=DRAIN_SECONDS / 2)
        load.stop()  # the load balancer has noticed and sends no more
    finally:
        load.stop()

    closed = server.wait_until_refused(deadline_seconds=DRAIN_SECONDS + 10)
    assert closed - signalled >= DRAIN_SECONDS * 0.9  # served for the whole drain window
    status, answer = slow.finish()  # in flight when the listener closed: still answered
    assert (status, answer["model"]) == (200, "tiny-en")
    assert server.process.wait(timeout=30) == 0

    answered_while_draining = [o for o in load.outcomes if o.started > signalled]
    failures = load.failures
    print(
        f"SIGTERM under load: {len(load.outcomes)} requests answered ({len(answered_while_draining)} after "
        f"SIGTERM), {len(failures)} failed, {load.refused} refused after the listener closed; exit 0"
    )
    assert failures == []
    assert {o.status for o in load.outcomes} == {200}
    assert answered_while_draining
    messages = [record["message"] for record in server.log_records()]
    assert any(message.startswith("SIGTERM: draining") for message in messages)
    assert any(message.startswith("drained:") for message in messages)


def test_sigterm_under_load_one_process(tiny_store: Path, tmp_path: Path) -> None:
    server = LiveServer.start(tiny_store, tmp_path / "server.log", ["--drain-seconds", str(DRAIN_SECONDS)])
    try:
        _sigterm_under_load(server)
    finally:
        server.kill()


@pytest.mark.slow
def test_workers_converge_by_polling_and_drain_on_sigterm(store_copy: Path, tmp_path: Path) -> None:
    flags = ["--workers", "2", "--drain-seconds", str(DRAIN_SECONDS), "--reload-interval-seconds", "0.2"]
    server = LiveServer.start(store_copy, tmp_path / "server.log", flags)
    try:
        add_version(store_copy, "tiny-en", 2)
        # Each worker polls the store for itself; /metrics is answered by one worker, named by its pid.
        serving_two: set[str] = set()
        deadline = time.monotonic() + 30
        while len(serving_two) < 2:
            assert time.monotonic() < deadline, f"workers serving version 2: {serving_two}"
            scrape = server.call("GET", "/metrics").body
            pid = scrape.split('lstm_service_worker_info{pid="', 1)[1].split('"', 1)[0]
            if 'lstm_service_model_serving{model="tiny-en",version="2"} 1.0' in scrape:
                serving_two.add(pid)
            time.sleep(0.05)
        _sigterm_under_load(server)
    finally:
        server.kill()
