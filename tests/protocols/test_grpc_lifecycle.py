"""The gRPC server's life beside the HTTP server's, in real server processes: with ``--workers 2`` both
workers serve the one gRPC port, and SIGTERM turns gRPC readiness and the health service off at once while
calls are still answered through the drain window."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.live_server import LiveServer
from support.network import free_port

pytestmark = pytest.mark.e2e
TEXTS = ["the striker scored a goal for the team", "bake the bread with cheese", "new laptop chip"]


def _text_input(texts: list[str]) -> triton.InferInput:
    tensor = triton.InferInput("TEXT", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode() for text in texts], dtype=np.object_))
    return tensor


def test_every_worker_serves_grpc_on_the_one_port(tiny_store: Path, tmp_path: Path) -> None:
    """With --workers 2 both workers bind the gRPC port (SO_REUSEPORT): the start-up succeeds and calls
    over fresh connections are answered, whichever worker takes them."""
    grpc_port = free_port()
    environment = {"LSTM_SERVICE_GRPC_PORT": str(grpc_port)}
    live = LiveServer.start(tiny_store, tmp_path / "server.log", ["--workers", "2"], environment)
    try:
        for _ in range(4):
            client = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            assert client.is_server_ready()
            assert client.infer("tiny-en", [_text_input(TEXTS)]).as_numpy("PROBS").shape == (3, 3)
            client.close()
        deadline = time.monotonic() + 120  # the second worker may still be starting
        while live.log_text().count("gRPC: Open Inference Protocol v2 on") < 2:
            assert time.monotonic() < deadline, live.log_text()
            time.sleep(0.2)
        live.terminate(group=True)
        live.process.wait(timeout=30)
    finally:
        live.kill()


def test_sigterm_turns_grpc_readiness_off_and_calls_are_answered_through_the_drain(
    tiny_store: Path, tmp_path: Path
) -> None:
    grpc_port = free_port()
    environment = {"LSTM_SERVICE_GRPC_PORT": str(grpc_port), "LSTM_SERVICE_DRAIN_SECONDS": "4"}
    live = LiveServer.start(tiny_store, tmp_path / "server.log", [], environment)
    try:
        client = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            serving = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30).status
            assert serving == health_pb2.HealthCheckResponse.SERVING
            live.terminate()
            deadline = time.monotonic() + 3
            while client.is_server_ready():
                assert time.monotonic() < deadline, "ServerReady still true after SIGTERM"
                time.sleep(0.05)
            while health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30).status == serving:
                assert time.monotonic() < deadline, "the health service still says SERVING after SIGTERM"
                time.sleep(0.05)
            # still inside the drain window: inference is answered
            assert client.infer("tiny-en", [_text_input(TEXTS)]).as_numpy("PROBS").shape == (3, 3)
        client.close()
        assert live.process.wait(timeout=60) == 0
    finally:
        live.kill()
