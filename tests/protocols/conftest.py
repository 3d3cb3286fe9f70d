"""Fixtures for the protocol tests: a real server process for the real clients, the real app in process
for everything else. Both serve a private copy of the committed tiny store, with an API key and an admin
token set, so every client test also proves that the credentials travel the way the README shows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from protocol_support import API_KEY, KEY, Server
from support.apps import ADMIN_TOKEN, running_app
from support.network import free_port
from support.stores import copy_store

from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def server(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``python -m service serve`` over a copy of the tiny store, with an API key and an admin token."""
    store = copy_store(tiny_store, tmp_path_factory.mktemp("protocols") / "store")
    port = free_port()
    log = (store.parent / "server.log").open("wb")
    environment = {
        **os.environ,
        "LSTM_SERVICE_API_KEY": API_KEY,
        "LSTM_SERVICE_ADMIN_TOKEN": ADMIN_TOKEN,
        "LSTM_SERVICE_DEFAULT_MODEL": "tiny-en",
    }
    # One worker: a repository call (like /admin) reaches the one worker that answers it.
    command = [sys.executable, "-m", "service", "serve", "--model-store", str(store), "--port", str(port)]
    command += ["--workers", "1"]
    process = subprocess.Popen(
        command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _ready(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((store.parent / "server.log").read_text(errors="replace"))
            time.sleep(0.1)
        yield Server(f"http://127.0.0.1:{port}", port, store, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the whole group: workers too
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


@pytest.fixture(scope="session")
def protocol_settings(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    store = copy_store(tiny_store, tmp_path_factory.mktemp("protocols-app") / "store")
    return Settings(model_store=store, api_key=API_KEY, admin_token=ADMIN_TOKEN, default_model="tiny-en")


@pytest.fixture(scope="session")
async def client(protocol_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app in process (real lifespan, real models), sending the API key with every request."""
    async with running_app(protocol_settings) as client:
        client.headers.update(KEY)
        yield client
