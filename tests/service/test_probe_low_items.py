"""The small doors a security probe found, each closed: forged access-log lines, hang-ups counted as
server errors, unbounded metric labels, a redirect that echoes ``Host``, an API documentation page without
security headers, and version and model-name checks that differed between the two doors."""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.apps import parse_metrics
from support.live_server import LiveServer, call

from service.observability.logs import TEXT_FORMAT, RequestIdFilter
from service.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def text_access_log() -> Iterator[io.StringIO]:
    """The access log as the service writes it with LSTM_SERVICE_LOG_FORMAT=text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logger = logging.getLogger("service.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def test_an_encoded_line_break_in_the_path_cannot_forge_an_access_line(
    client: httpx.AsyncClient, text_access_log: io.StringIO
):
    forged = "/nope%0D%0A2026-01-01 00:00:00 INFO service.access [x] POST /admin/models/a/unload 200 1.0 ms"
    await client.get(forged)
    await client.get("/livez")
    lines = text_access_log.getvalue().splitlines()
    assert len(lines) == 2, lines  # one line per request, however the path was encoded
    assert "GET /nope\\r\\n2026-01-01" in lines[0]
    assert "/admin/models" not in lines[1]


def _requests_of(metrics_text: str, route: str, method: str) -> dict[str, float]:
    """``{status: count}`` of ``lstm_service_requests_total`` for one route and method."""
    counts = {}
    for (name, labels), value in parse_metrics(metrics_text).items():
        labels_dict = dict(labels)
        if name == "lstm_service_requests_total" and labels_dict.get("route") == route:
            if labels_dict.get("method") == method:
                counts[labels_dict["status"]] = value
    return counts


async def test_odd_methods_and_paths_share_one_metrics_label(client: httpx.AsyncClient):
    methods = ("PROPFIND", "MKCOL", "LOCK", "UNLOCK", "SEARCH", "REPORT")
    for number, method in enumerate(methods):
        assert (await client.request(method, "/classify")).status_code == 405
        assert (await client.request(method, f"/odd-path-{number}")).status_code == 404
    text = (await client.get("/metrics")).text
    assert not any(f'method="{method}"' in text for method in methods)
    assert "odd-path" not in text
    assert sum(_requests_of(text, "/classify", "OTHER").values()) >= len(methods)
    assert sum(_requests_of(text, "unmatched", "OTHER").values()) >= len(methods)


async def test_a_trailing_slash_is_not_redirected_to_the_requests_host(client: httpx.AsyncClient):
    for path in ("/models/", "/classify/", "/livez/"):
        answer = await client.get(path, headers={"Host": "evil.example"})
        assert answer.status_code == 404 and "location" not in answer.headers
        assert answer.json()["error_type"] == "not_found"


async def test_the_documentation_page_has_security_headers(client: httpx.AsyncClient):
    for path in ("/docs", "/inspect"):
        page = await client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
    page = await client.get("/docs")
    inline = re.findall(rb"<script>(.*?)</script>", page.content, re.DOTALL)
    assert inline  # Swagger UI's start-up script runs: the policy allows it by its hash, nothing else
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
        assert f"'sha256-{digest}'" in page.headers["content-security-policy"]
    scripts = page.headers["content-security-policy"].split("script-src")[1].split(";")[0]
    assert "'unsafe-inline'" not in scripts


@pytest.mark.parametrize("version", ["1.0", "+1", "1e0", "0x1", "0", "2147483648"])
async def test_both_doors_refuse_a_version_that_is_not_a_plain_integer(
    tiny_store: Path, start_app, version: str
):
    body = {"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": ["goal"]}]}
    answers = []
    for hot in (True, False):
        async with start_app(Settings(model_store=tiny_store), hot_routes=hot) as client:
            answer = await client.post(f"/v2/models/tiny-en/versions/{version}/infer", json=body)
            metadata = await client.get(f"/v2/models/tiny-en/versions/{version}")
            answers.append((answer.status_code, answer.json(), metadata.status_code))
    assert answers[0] == answers[1]
    assert answers[0][0] == 422 and answers[0][2] == 422, answers
    assert answers[0][1]["error"].startswith("path.version: Input should be")


async def test_a_model_name_with_a_trailing_newline_is_refused(tiny_store: Path, start_app):
    answers = []
    for hot in (True, False):
        async with start_app(Settings(model_store=tiny_store), hot_routes=hot) as client:
            answer = await client.post("/classify", json={"text": "goal", "model": "tiny-en\n"})
            answers.append((answer.status_code, answer.json()["error_type"]))
            good = await client.post("/classify", json={"text": "goal", "model": "tiny-en"})
            assert good.status_code == 200
    assert answers == [(422, "validation"), (422, "validation")]


@pytest.mark.slow
def test_a_client_that_hangs_up_mid_body_is_counted_apart_from_server_errors(
    tiny_store: Path, tmp_path: Path
):
    server = LiveServer.start(tiny_store, tmp_path / "server.log", flags=["--workers", "1"])
    try:
        for _ in range(3):
            connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            connection.sendall(
                b"POST /classify HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"text": '
            )
            time.sleep(0.2)
            connection.close()
        deadline = time.monotonic() + 10
        while True:
            counts = _requests_of(call(server.port, "GET", "/metrics").body, "unmatched", "POST")
            counts.update(_requests_of(call(server.port, "GET", "/metrics").body, "/classify", "POST"))
            if counts.get("499", 0) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert counts.get("499") == 3 and "500" not in counts, counts
        deadline = time.monotonic() + 10  # the access log is written in bulk, within a second
        while True:
            lines = [r for r in server.log_records() if r.get("logger") == "service.access"]
            statuses = [line["status"] for line in lines if line.get("path") == "/classify"]
            if len(statuses) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert statuses == [499] * 3
    finally:
        server.kill()
