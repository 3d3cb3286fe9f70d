"""Fixtures for the protocol tests: a real server process for the real clients, the real app in process
for everything else. Both serve a private copy of the committed tiny store, with an API key and an admin
token set, so every client test also proves that the credentials travel the way the README shows."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from protocol_support import (
    API_KEY,
    DEFAULT_MODELS,
    DEFAULT_STORE,
    GRPC_MAX_MESSAGE_BYTES,
    KEY,
    GrpcServer,
    Server,
)
from support.apps import ADMIN_TOKEN, running_app
from support.live_server import LiveServer
from support.network import free_port
from support.stores import SHAPES, STORE, copy_store

from service.settings import Settings


@pytest.fixture(scope="session")
def server(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``python -m service serve`` over a copy of the tiny store, with an API key and an admin token."""
    store = copy_store(tiny_store, tmp_path_factory.mktemp("protocols") / "store")
    environment = {
        "LSTM_SERVICE_API_KEY": API_KEY,
        "LSTM_SERVICE_ADMIN_TOKEN": ADMIN_TOKEN,
        "LSTM_SERVICE_DEFAULT_MODEL": "tiny-en",
    }
    # One worker: a repository call (like /admin) reaches the one worker that answers it.
    live = LiveServer.start(store, store.parent / "server.log", ["--workers", "1"], environment)
    try:
        yield Server(f"http://127.0.0.1:{live.port}", live.port, store, live.process)
        live.terminate(group=True)  # the whole group: workers too
        live.process.wait(timeout=30)
    finally:
        live.kill()  # whatever is still running, e.g. after a failed start-up check


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


@pytest.fixture(scope="session")
def grpc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    """``python -m service serve`` with ``LSTM_SERVICE_GRPC_PORT`` over tiny-en, tiny-zh, the multi-label
    tiny-tags and the two default models, with the API key and the admin token, and a gRPC message limit
    of 256 KiB."""
    store = copy_store(STORE, tmp_path_factory.mktemp("grpc") / "store")
    shutil.copytree(SHAPES / "tiny-tags", store / "tiny-tags")
    for name in DEFAULT_MODELS:  # the two models the image serves, for scores equal on real models
        shutil.copytree(DEFAULT_STORE / name, store / name)
    grpc_port = free_port()
    environment = {
        "LSTM_SERVICE_API_KEY": API_KEY,
        "LSTM_SERVICE_ADMIN_TOKEN": ADMIN_TOKEN,
        "LSTM_SERVICE_DEFAULT_MODEL": "tiny-en",
        "LSTM_SERVICE_GRPC_PORT": str(grpc_port),
        "LSTM_SERVICE_GRPC_MAX_MESSAGE_BYTES": str(GRPC_MAX_MESSAGE_BYTES),
    }
    live = LiveServer.start(store, store.parent / "server.log", [], environment)
    try:
        yield GrpcServer(f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{live.port}", live)
        live.terminate(group=True)
        live.process.wait(timeout=30)
    finally:
        live.kill()
