"""End to end: ``python -m service serve`` in a subprocess on a free port, called with the stdlib."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.network import free_port

REPO = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE_SECONDS = 60


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read())


def _wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"the server exited with {server.process.returncode} before it was ready")
        try:
            if server.request("GET", "/readyz")[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass  # not listening yet
        time.sleep(0.1)
    raise AssertionError(f"the server was not ready within {STARTUP_DEADLINE_SECONDS} s")


@pytest.fixture(scope="module")
def server(tiny_store: Path) -> Iterator[Server]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "service",
        "serve",
        "--model-store",
        str(tiny_store),
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--max-texts",
        "8",
        "--drain-seconds",
        "0",
    ]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    running = Server(process, port)
    try:
        _wait_until_ready(running)
        yield running
        # The module's last check: SIGTERM shuts the server down cleanly, with exit status 0.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_every_route_answers(server: Server) -> None:
    status, headers, classified = server.request("POST", "/classify", {"text": "the chef made soup"})
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
        assert server.request(method, path, body)[0] == 200, path


def test_curl_style_form_content_type_still_classifies(server: Server) -> None:
    body = json.dumps({"text": "这个东西很好", "model": "tiny-zh"}).encode()

    status, _, answer = server.request(
        "POST", "/classify", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert status == 200 and answer["model"] == "tiny-zh"


def test_flags_reach_the_settings(server: Server) -> None:
    status, _, answer = server.request("POST", "/classify", {"texts": ["goal"] * 9})

    assert status == 422 and answer["error"] == "too many texts: 9 (at most 8 per request)"


def test_a_chunked_body_over_the_limit_gets_413_and_the_server_keeps_serving(server: Server) -> None:
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
    assert server.request("POST", "/classify", {"text": "goal"})[0] == 200


def test_a_declared_body_over_the_limit_gets_413(server: Server) -> None:
    status, _, answer = server.request("POST", "/embed", {"text": "g" * (1 << 20)})

    assert (status, answer["error_type"]) == (413, "payload_too_large")
    assert server.request("GET", "/readyz")[0] == 200


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
