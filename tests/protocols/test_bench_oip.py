"""The benchmark's OIP row sends requests the service answers as it answers /classify, and its note
compares the two rows of the same run."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from tritonclient.http import InferResult

from bench.oip_client import ROW_NAME, encode_requests, notes

pytestmark = pytest.mark.anyio


async def test_the_bench_requests_score_as_classify(client: httpx.AsyncClient) -> None:
    bodies = [json.dumps({"model": "tiny-en", "texts": ["goal for the team", "bake bread"]}).encode()]
    (request,) = encode_requests("127.0.0.1", bodies)
    head, body = request.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    method, path, _ = lines[0].split(" ")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert (method, path, int(headers["Content-Length"])) == ("POST", "/v2/models/tiny-en/infer", len(body))
    answer = await client.post(
        path,
        content=body,
        headers={"Inference-Header-Content-Length": headers["Inference-Header-Content-Length"]},
    )
    assert answer.status_code == 200
    length = int(answer.headers["Inference-Header-Content-Length"])
    probabilities = InferResult.from_response_body(answer.content, header_length=length).as_numpy("PROBS")
    classified = (await client.post("/classify", json=json.loads(bodies[0]))).json()["results"]
    expected = [[result["scores"][label] for label in ("food", "sport", "tech")] for result in classified]
    np.testing.assert_array_equal(probabilities, np.array(expected, dtype=np.float32))


def test_the_note_compares_the_rows_at_the_highest_concurrency() -> None:
    rows = [
        {"server": "service", "model": "m", "concurrency": 64, "texts_per_s": 1000.0},
        {"server": ROW_NAME, "model": "m", "concurrency": 64, "texts_per_s": 900.0},
        {"server": ROW_NAME, "model": "m", "concurrency": 1, "texts_per_s": 10.0},
    ]
    assert notes(rows) == ["m: OIP v2 binary 900 texts/s vs /classify 1000 at concurrency 64 (-10.0 %)"]
