"""End to end: ``python -m service serve`` in a subprocess on a free port (:mod:`support.live_server`),
called with the stdlib."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.live_server import REPO, LiveServer


@pytest.fixture(scope="module")
def server(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("end-to-end") / "server.log"
    flags = ["--log-level", "warning", "--max-texts", "8", "--drain-seconds", "0"]
    running = LiveServer.start(tiny_store, log, flags)
    try:
        yield running
        # The module's last check: SIGTERM shuts the server down cleanly, with exit status 0.
        running.terminate()
        assert running.process.wait(timeout=15) == 0, running.log_text()
    finally:
        running.kill()


def _request(
    server: LiveServer, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    reply = server.call(method, path, body, headers=headers)
    return reply.status, reply.headers, reply.body


def test_every_route_answers(server: LiveServer) -> None:
    status, headers, classified = _request(server, "POST", "/classify", {"text": "the chef made soup"})
    assert status == 200 and classified["results"][0]["label"] == "food"
    assert headers["x-request-id"]

    calls = [
        ("POST", "/tokenize", {"text": "goal!"}),
        ("POST", "/embed", {"tokens": ["goal"], "neighbors": 2}),
        ("POST", "/hidden-states", {"text": "goal"}),
        ("GET", "/models", None),
        ("GET", "/models/tiny-zh", None),
        ("GET", "/livez", None),
        ("GET", "/readyz", None),
        ("GET", "/health", None),
        ("GET", "/openapi.json", None),
    ]
    for method, path, body in calls:
        assert _request(server, method, path, body)[0] == 200, path


def test_curl_style_form_content_type_still_classifies(server: LiveServer) -> None:
    body = json.dumps({"text": "这个东西很好", "model": "tiny-zh"}).encode()

    status, _, answer = _request(
        server, "POST", "/classify", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert status == 200 and answer["model"] == "tiny-zh"


def test_flags_reach_the_settings(server: LiveServer) -> None:
    status, _, answer = _request(server, "POST", "/classify", {"texts": ["goal"] * 9})

    assert status == 422 and answer["error"] == "too many texts: 9 (at most 8 per request)"


def test_a_chunked_body_over_the_limit_gets_413_and_the_server_keeps_serving(server: LiveServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    chunks = (b"x" * 65_536 for _ in range(20))  # 1.25 MiB, no Content-Length
    try:
        connection.request(
            "POST",
            "/classify",
            body=chunks,
            encode_chunked=True,
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        status, answer = response.status, json.loads(response.read())
    finally:
        connection.close()

    assert status == 413 and answer["error_type"] == "payload_too_large"
    assert _request(server, "POST", "/classify", {"text": "goal"})[0] == 200


def test_a_declared_body_over_the_limit_gets_413(server: LiveServer) -> None:
    status, _, answer = _request(server, "POST", "/embed", {"text": "g" * (1 << 20)})

    assert (status, answer["error_type"]) == (413, "payload_too_large")
    assert _request(server, "GET", "/readyz")[0] == 200


def test_serve_refuses_settings_that_cannot_work(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--model-store", str(tmp_path / "nowhere")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "LSTM_SERVICE_MODEL_STORE" in result.stderr and "Traceback" not in result.stderr
