"""A real uvicorn process serving a model store, and a stdlib HTTP client for it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.live_server import launch
from support.network import free_port


def call(port: int, method: str, path: str, body: Any = None, timeout: float = 60) -> tuple[int, Any]:
    """One request on a new connection: (status, parsed JSON body or text)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        raw = response.read()
        if response.getheader("content-type", "").startswith("application/json"):
            return response.status, json.loads(raw)
        return response.status, raw.decode("utf-8", "replace")
    finally:
        connection.close()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, store: Path, log_path: Path, env: dict[str, str] | None = None) -> Server:
        port = free_port()
        command = [
            sys.executable, "-m", "uvicorn", "service.api.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        ]  # fmt: skip
        environment = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "LSTM_SERVICE_MODEL_STORE": str(store),
            **(env or {}),
        }
        with log_path.open("wb") as log:
            process = launch(command, environment, log)
        server = cls(process, port, log_path)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"the server exited with {process.returncode}:\n{server.log_text()}")
            try:
                if call(port, "GET", "/readyz", timeout=5)[0] == 200:
                    return server
            except OSError:
                pass
            time.sleep(0.1)
        server.stop()
        raise AssertionError(f"the server was not ready within 120 s:\n{server.log_text()}")

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> tuple[int, Any]:
        return call(self.port, method, path, body, timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")
