"""SIGTERM under steady load on a real server: readiness says draining at once, requests keep being
answered through the drain window, a request still in flight when the listener closes is finished, no
accepted request fails, and every process exits (the server with 0). With one process and with
--workers 2, the signal sent to the server alone and to its whole process group (as systemd's
``KillMode=control-group``, Ctrl-C or ``kill -- -PGID`` deliver it).

``DRAIN_TEST_REPETITIONS=20`` runs each case 20 times (default: once).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from pathlib import Path

import pytest
from support.live_server import LiveServer, Load, Reply
from support.stores import add_version

DRAIN_SECONDS = 2.0
REPETITIONS = range(int(os.environ.get("DRAIN_TEST_REPETITIONS", "1")))
SIGNALLED = ["server", "group"]  # who gets SIGTERM: the server process alone, or every process of its group
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
    """/readyz once it says draining: at once with one process; with --workers, once the supervisor has
    passed the order on (it looks at the signals it got every 0.05 s)."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        ready = server.call("GET", "/readyz")
        if ready.status != 200 or time.monotonic() > deadline:
            assert (ready.status, ready.body["status"]) == (503, "draining"), ready
            return ready
        time.sleep(0.02)


def _sigterm_under_load(server: LiveServer, signalled_to: str) -> None:
    load = Load(server.port, _request, clients=4).start()
    try:
        load.wait_for(40, deadline_seconds=30)
        slow = _SlowRequest(server.port)

        server.terminate(group=signalled_to == "group")
        signalled = time.monotonic()
        ready = _readiness_when_draining(server, deadline_seconds=1.5)
        assert ready.body["error_type"] == "unavailable" and ready.body["error"].startswith("draining")
        assert server.call("GET", "/livez").status == 200
        during = server.call("POST", "/classify", {"text": "goal"})
        assert during.status == 200 and during.headers["connection"] == "close"
        # The load goes on for half the window, then the load balancer has noticed and sends no more. How
        # many requests get answered meanwhile depends on the machine; that each one is answered does not.
        time.sleep(max(0.0, signalled + DRAIN_SECONDS / 2 - time.monotonic()))
        load.stop()
    finally:
        load.stop()

    closed = server.wait_until_refused(deadline_seconds=DRAIN_SECONDS + 10)
    assert closed - signalled >= DRAIN_SECONDS * 0.9  # served for the whole drain window
    status, answer = slow.finish()  # in flight when the listener closed: still answered
    assert (status, answer["model"]) == (200, "tiny-en")
    assert server.process.wait(timeout=30) == 0
    server.wait_group_gone(deadline_seconds=10)  # the workers too

    answered_while_draining = [o for o in load.outcomes if o.started > signalled and o.status == 200]
    failures = load.failures
    print(
        f"SIGTERM to the {signalled_to} under load: {len(load.outcomes)} requests answered "
        f"({len(answered_while_draining)} sent after SIGTERM), {len(failures)} failed, "
        f"{load.refused} refused after the listener closed; exit 0"
    )
    assert failures == []
    assert {o.status for o in load.outcomes} == {200}
    assert answered_while_draining
    messages = [record["message"] for record in server.log_records()]
    assert any(message.startswith("SIGTERM: draining") for message in messages)
    assert any(message.startswith("drained:") for message in messages)


@pytest.mark.parametrize("repetition", REPETITIONS)
@pytest.mark.parametrize("signalled_to", SIGNALLED)
def test_sigterm_under_load_one_process(
    tiny_store: Path, tmp_path: Path, signalled_to: str, repetition: int
) -> None:
    flags = ["--workers", "1", "--drain-seconds", str(DRAIN_SECONDS)]
    server = LiveServer.start(tiny_store, tmp_path / "server.log", flags)
    try:
        _sigterm_under_load(server, signalled_to)
    finally:
        server.kill()


@pytest.mark.slow
@pytest.mark.parametrize("repetition", REPETITIONS)
@pytest.mark.parametrize("signalled_to", SIGNALLED)
def test_workers_converge_by_polling_and_drain_on_sigterm(
    store_copy: Path, tmp_path: Path, signalled_to: str, repetition: int
) -> None:
    flags = ["--workers", "2", "--drain-seconds", str(DRAIN_SECONDS), "--reload-interval-seconds", "0.2"]
    server = LiveServer.start(store_copy, tmp_path / "server.log", flags)
    try:
        add_version(store_copy, "tiny-en", 2)
        # Each worker polls the store for itself; /metrics adds up the workers serving each version.
        deadline = time.monotonic() + 30
        while 'lstm_service_model_serving{model="tiny-en",version="2"} 2.0' not in (
            scrape := server.call("GET", "/metrics").body
        ):
            assert time.monotonic() < deadline, f"both workers never served version 2:\n{scrape}"
            time.sleep(0.05)
        _sigterm_under_load(server, signalled_to)
    finally:
        server.kill()


def test_signals_become_orders_in_one_process_and_are_ignored_by_workers() -> None:
    import signal

    import uvicorn

    from service import lifecycle
    from service.server import DrainingServer

    config = uvicorn.Config(app=lambda scope, receive, send: None)
    alone, worker = DrainingServer(config, 5.0), DrainingServer(config, 5.0, obey_signals=False)
    try:
        worker.handle_exit(signal.SIGTERM, None)
        worker.handle_exit(signal.SIGINT, None)
        assert (worker.drain_ordered_at, worker.should_exit, lifecycle.is_draining()) == (None, False, False)

        alone.handle_exit(signal.SIGTERM, None)  # drain: readiness says so at once, serving goes on
        assert alone.drain_ordered_at is not None and lifecycle.is_draining() and not alone.should_exit
        alone.handle_exit(signal.SIGTERM, None)  # a second SIGTERM skips the rest of the window
        assert (alone.should_exit, alone.force_exit) == (True, False)
        alone.handle_exit(signal.SIGINT, None)  # SIGINT while stopping: stop without waiting
        assert alone.force_exit
    finally:
        lifecycle.reset()
