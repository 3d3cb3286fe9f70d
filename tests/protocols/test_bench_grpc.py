"""The benchmark's gRPC row sends what ``tritonclient.grpc`` sends, the server answers it as ``/classify``,
and its closed loop counts answers without errors."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from protocol_support import API_KEY, KEY, GrpcServer
from tritonclient.grpc import service_pb2

from bench import grpc_client

pytestmark = pytest.mark.e2e
BODY = json.dumps({"model": "tiny-en", "texts": ["goal for the team", "bake bread"]}).encode()


def test_the_bench_requests_score_as_classify(grpc_server: GrpcServer) -> None:
    (request,) = grpc_client.encode_requests([BODY])
    with grpc.insecure_channel(grpc_server.target) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        raw = infer(request, metadata=(("authorization", f"Bearer {API_KEY}"),), timeout=30)
    answer = service_pb2.ModelInferResponse.FromString(raw)
    assert [output.name for output in answer.outputs] == ["PROBS"]
    probabilities = np.frombuffer(answer.raw_output_contents[0], dtype="<f4").reshape(2, 3)
    http = urllib.request.Request(f"{grpc_server.url}/classify", BODY, headers=dict(KEY))
    with urllib.request.urlopen(http, timeout=30) as reply:
        classified = json.load(reply)["results"]
    expected = [[result["scores"][label] for label in ("food", "sport", "tech")] for result in classified]
    np.testing.assert_array_equal(probabilities, np.array(expected, dtype=np.float32))


def test_the_closed_loop_counts_answers_and_refusals(grpc_server: GrpcServer, tmp_path: Path) -> None:
    """The server needs the API key and the bench sends none: every answer is a refusal, counted as one
    (an OK answer would be miscounted the other way); then the note compares the rows."""
    bodies = tmp_path / "bodies.jsonl"
    bodies.write_bytes(BODY + b"\n")
    port = grpc_server.target.rsplit(":", 1)[1]
    command = [
        sys.executable, "-m", "bench.grpc_client", "--port", port, "--requests", str(bodies),
        "--concurrency", "2", "--duration", "1", "--warmup", "0.2", "--texts-per-request", "2",
    ]  # fmt: skip
    summary = json.loads(subprocess.run(command, capture_output=True, check=True, timeout=120).stdout)
    assert summary["ok"] == 0 and summary["statuses"]["500"] == summary["requests"] > 0
    rows = [
        {"server": "service", "model": "m", "concurrency": 64, "texts_per_s": 1000.0},
        {"server": "service (OIP v2)", "model": "m", "concurrency": 64, "texts_per_s": 950.0},
        {"server": grpc_client.ROW_NAME, "model": "m", "concurrency": 64, "texts_per_s": 900.0},
        {"server": grpc_client.ROW_NAME, "model": "m", "concurrency": 1, "texts_per_s": 10.0},
    ]
    assert grpc_client.notes(rows) == [
        "m: OIP v2 gRPC 900 texts/s at concurrency 64 (same run: service (OIP v2) 950, service 1000)"
    ]
