"""A real ``python -m service serve`` in a subprocess, and stdlib HTTP clients for it (tests and scripts).

The server runs in a process group of its own: a test can signal the whole group (as systemd or Ctrl-C
do), and :meth:`LiveServer.kill` ends every process of it, workers included, whatever the test did.

Requests open a fresh connection each (like ``urllib``), so a client never reuses a connection the server
is closing; :func:`call` tells "the server refused the connection" (never accepted: fine once the server
has stopped listening) from "the request was accepted and then failed" (what must never happen).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import IO, Any

from support.network import free_port

REPO = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE_SECONDS = 90
# The pid of every server process :func:`launch` started, in order: a test that adds one must be marked e2e
# (support.markers finds the tests that reach launch before they run, and fails one that slipped through).
LAUNCHED: list[int] = []


def launch(command: Sequence[str], env: dict[str, str], log: IO[bytes], group: bool = False) -> Popen[bytes]:
    """Start a real server process from the repository root; every helper that starts one goes through here.

    ``group`` makes it the leader of a process group of its own (see :meth:`LiveServer.kill`)."""
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=group
    )
    LAUNCHED.append(process.pid)
    return process


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


class Refused(Exception):
    """The TCP connection was refused: the server is not listening (the request was never accepted)."""


def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Reply:
    """One request on a new connection; :class:`Refused` if nobody listens, other errors propagate."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        try:
            connection.connect()
        except ConnectionRefusedError as error:
            raise Refused(str(error)) from error
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        raw = response.read()
        content_type = response.getheader("content-type", "")
        parsed = json.loads(raw) if content_type.startswith("application/json") else raw.decode()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, parsed)
    finally:
        connection.close()


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @classmethod
    def start(
        cls, store: Path, log_path: Path, flags: Sequence[str] = (), env: dict[str, str] | None = None
    ) -> LiveServer:
        """Start the server with JSON logs at info level written to ``log_path``, and wait until ready."""
        port = free_port()
        command = [
            sys.executable, "-m", "service", "serve", "--model-store", str(store), "--port", str(port),
            "--log-format", "json", "--log-level", "info", *flags,
        ]  # fmt: skip
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with log_path.open("wb") as log:
            process = launch(command, environment, log, group=True)
        server = cls(process, port, log_path)
        try:
            server.wait_ready()
        except BaseException:
            server.kill()
            raise
        return server

    def call(self, method: str, path: str, body: Any = None, **options: Any) -> Reply:
        return call(self.port, method, path, body, **options)

    def wait_ready(self, deadline_seconds: float = STARTUP_DEADLINE_SECONDS) -> None:
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if self.call("GET", "/readyz", timeout=5).status == 200:
                    return
            except (Refused, OSError, http.client.HTTPException):
                pass  # not listening yet
            time.sleep(0.1)
        raise AssertionError(f"the server was not ready within {deadline_seconds} s:\n{self.log_text()}")

    def wait_until_refused(self, deadline_seconds: float) -> float:
        """Poll until the server stops listening; the monotonic time it was first seen refusing."""
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
            except ConnectionRefusedError:
                return time.monotonic()
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server still listens after {deadline_seconds} s")

    def terminate(self, group: bool = False) -> None:
        """SIGTERM to the server process, or with ``group`` to every process of its group at once."""
        if group:
            os.killpg(self.process.pid, signal.SIGTERM)
        else:
            self.process.send_signal(signal.SIGTERM)

    def group_alive(self) -> bool:
        """Whether any process of the server's group (the server, its workers) is still running."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def wait_group_gone(self, deadline_seconds: float) -> None:
        deadline = time.monotonic() + deadline_seconds
        while self.group_alive():
            assert time.monotonic() < deadline, f"the server's group still runs:\n{self.log_text()}"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL to every process of the group (a no-op once they are all gone)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines (lines that are not JSON, e.g. a crash trace, are skipped)."""
        records = []
        for line in self.log_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records


@dataclass
class Outcome:
    started: float
    finished: float
    status: int | None = None  # None: the request failed after the connection was accepted
    version: int | None = None
    error: str | None = None


@dataclass
class Load:
    """``clients`` threads sending ``make_request(i)`` in a loop until :meth:`stop` (or ``max_requests``
    each). A refused connection ends a client (the server stopped listening); every other exception after
    the connection was accepted is recorded as a failure."""

    port: int
    make_request: Callable[[int], tuple[str, str, Any]]
    clients: int = 4
    max_requests: int = 5_000
    outcomes: list[Outcome] = field(default_factory=list)
    refused: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _client(self, index: int) -> None:
        for number in range(self.max_requests):
            if self._stop.is_set():
                return
            method, path, body = self.make_request(index * self.max_requests + number)
            started = time.monotonic()
            try:
                reply = call(self.port, method, path, body, timeout=30)
                version = reply.body.get("version") if isinstance(reply.body, dict) else None
                outcome = Outcome(started, time.monotonic(), reply.status, version)
            except Refused:
                with self._lock:
                    self.refused += 1
                return
            except Exception as error:  # accepted, then no answer: what must never happen
                outcome = Outcome(started, time.monotonic(), error=repr(error))
            with self._lock:
                self.outcomes.append(outcome)

    def start(self) -> Load:
        self._threads = [
            threading.Thread(target=self._client, args=(index,), daemon=True) for index in range(self.clients)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def wait_for(self, answered: int, deadline_seconds: float) -> None:
        deadline = time.monotonic() + deadline_seconds
        while len(self.outcomes) < answered:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.outcomes)} answers within {deadline_seconds} s")
            time.sleep(0.02)

    def stop(self, deadline_seconds: float = 60) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=deadline_seconds)
            assert not thread.is_alive(), "a load client did not stop"

    @property
    def failures(self) -> list[Outcome]:
        """Accepted requests that got no answer or a 5xx."""
        return [o for o in self.outcomes if o.status is None or o.status >= 500]
