"""A real server (httptools, one process) holds no connection longer or larger than its limits allow:
a head past the cap gets 431 while other clients are served, a head or a body that does not arrive in time
gets 408 and the connection closes, and a body-carrying request without the API key is answered 401 from
its headers, before any of its body is read."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.live_server import LiveServer

KEY = "limits-key-0123456789"
CLASSIFY = b'{"text": "the cup match"}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_store: Path) -> Iterator[LiveServer]:
    live = LiveServer.start(
        tiny_store,
        tmp_path_factory.mktemp("limits") / "server.log",
        flags=["--workers", "1", "--default-model", "tiny-en"],
        env={
            "LSTM_SERVICE_API_KEY": KEY,
            "LSTM_SERVICE_ADMIN_TOKEN": "limits-admin-token",
            "LSTM_SERVICE_HEAD_TIMEOUT_SECONDS": "1.5",
            "LSTM_SERVICE_BODY_TIMEOUT_SECONDS": "1.5",
            "LSTM_SERVICE_MAX_HEAD_BYTES": str(64 << 10),
        },
    )
    try:
        yield live
    finally:
        live.kill()


def _connect(server: LiveServer) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def _read_until_closed(connection: socket.socket, seconds: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (AssertionError if it does not)."""
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open; it sent {received[:200]!r}") from None
    return received


def _classify_head(length: int, key: str | None = KEY) -> bytes:
    auth = f"X-API-Key: {key}\r\n" if key else ""
    return (
        f"POST /classify HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _legit_latencies(server: LiveServer, stop: threading.Event, seconds: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        reply = server.call("POST", "/classify", {"text": "the cup match"}, headers={"X-API-Key": KEY})
        assert reply.status == 200
        seconds.append(time.perf_counter() - started)


def test_an_endless_header_value_gets_431_while_others_are_served(server: LiveServer):
    seconds: list[float] = []
    stop = threading.Event()
    legit = threading.Thread(target=_legit_latencies, args=(server, stop, seconds), daemon=True)
    legit.start()
    attacker = _connect(server)
    sent = 0
    try:
        attacker.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\nX-Pad: ")
        chunk = b"a" * 1024
        while sent < (4 << 20):  # at most 4 MiB, far past the cap
            try:
                attacker.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            time.sleep(0.0005)
        answer = _read_until_closed(attacker)
    finally:
        stop.set()
        legit.join(timeout=30)
        attacker.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert sent < 4 << 20  # the server closed the connection: the client could not go on sending
    assert len(seconds) >= 5
    assert statistics.median(seconds) < 1.0, seconds  # without the cap: seconds each (quadratic growth)


def test_too_many_headers_get_431(server: LiveServer):
    connection = _connect(server)
    headers = "".join(f"X-Header-{number}: {number}\r\n" for number in range(101))
    connection.sendall(f"GET /livez HTTP/1.1\r\nHost: test\r\n{headers}\r\n".encode())
    assert _read_until_closed(connection).startswith(b"HTTP/1.1 431 ")
    connection = _connect(server)
    headers = "".join(f"X-Header-{number}: {number}\r\n" for number in range(90))
    connection.sendall(f"GET /livez HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}\r\n".encode())
    assert _read_until_closed(connection).startswith(b"HTTP/1.1 200 ")


def test_a_head_sent_a_line_at_a_time_is_cut_off(server: LiveServer):
    connection = _connect(server)
    started = time.monotonic()
    connection.sendall(b"GET /livez HTTP/1.1\r\nHost: test\r\n")
    try:
        for number in range(40):  # 12 s of a header every 0.3 s, unless the server closes first
            time.sleep(0.3)
            connection.sendall(f"X-Slow-{number}: a\r\n".encode())
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = _read_until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert time.monotonic() - started < 8


def test_a_connection_that_sends_nothing_is_closed(server: LiveServer):
    connection = _connect(server)
    started = time.monotonic()
    assert _read_until_closed(connection) == b""
    assert 1.0 < time.monotonic() - started < 8


def test_a_stalled_body_is_closed_after_the_body_timeout(server: LiveServer):
    connection = _connect(server)
    connection.sendall(_classify_head(len(CLASSIFY)) + CLASSIFY[:-1])  # all but the last byte
    started = time.monotonic()
    answer = _read_until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert 1.0 < time.monotonic() - started < 8
    assert server.call("POST", "/classify", {"text": "goal"}, headers={"X-API-Key": KEY}).status == 200


def test_a_body_without_the_key_is_refused_before_it_is_read(server: LiveServer):
    connection = _connect(server)
    connection.sendall(_classify_head(1 << 20, key=None))  # the head only: the body is never sent
    started = time.monotonic()
    answer = _read_until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert b"connection: close" in answer.lower()
    assert time.monotonic() - started < 1.0  # answered at once, not after the body timeout


def test_an_admin_body_without_the_token_is_refused_before_it_is_read(server: LiveServer):
    connection = _connect(server)
    head = "POST /admin/models/tiny-en/load HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n"
    connection.sendall(f"{head}Authorization: Bearer {KEY}\r\n\r\n".encode())  # the API key is no token
    answer = _read_until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 401 ") and b"LSTM_SERVICE_ADMIN_TOKEN" in answer, answer[:300]


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_many_unauthenticated_bodies_hold_no_memory(server: LiveServer):
    """200 clients sending all but the last byte of a 1 MiB body without the key: each is answered and
    closed at its head (the rest of its body is refused by the closed socket), and the worker's memory
    stays flat."""
    before = _rss_bytes(server.process.pid)
    connections = [_connect(server) for _ in range(200)]
    body = b"x" * ((1 << 20) - 1)
    for connection in connections:
        try:
            connection.sendall(_classify_head(1 << 20, key=None) + body)
        except OSError:
            pass  # closed after the 401 (a reset may then also drop the 401 on this side)
    for connection in connections:
        _read_until_closed(connection)
        connection.close()
    assert _rss_bytes(server.process.pid) - before < 20 << 20
    assert server.call("POST", "/classify", {"text": "goal"}, headers={"X-API-Key": KEY}).status == 200
