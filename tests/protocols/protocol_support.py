"""What the protocol tests share: the credentials they send and the handle of a live server."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from support.apps import ADMIN_TOKEN
from support.live_server import LiveServer

API_KEY = "test-api-key-0123456789"
KEY = {"Authorization": f"Bearer {API_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Server:
    url: str  # http://127.0.0.1:<port>
    port: int
    store: Path
    process: subprocess.Popen[bytes]


DEFAULT_STORE = Path(__file__).resolve().parents[2] / "model_store"  # the models the image serves
DEFAULT_MODELS = ("news-topic", "review-sentiment-zh")
GRPC_MAX_MESSAGE_BYTES = 256 * 1024  # the gRPC server's message limit in the tests (small, to pass it)
GRPC_KEY = (("authorization", f"Bearer {API_KEY}"),)  # the API key as gRPC metadata


@dataclass
class GrpcServer:
    target: str  # 127.0.0.1:<grpc port>
    url: str  # http://127.0.0.1:<http port>, the same process
    live: LiveServer
