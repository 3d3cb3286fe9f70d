"""The protocols' hot routes (OIP infer, TEI predict) and their FastAPI twins answer every request alike:
status, body bytes and headers, for binary and JSON requests, good and bad."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from protocol_support import API_KEY, KEY
from support.apps import running_app

from service.settings import Settings

pytestmark = pytest.mark.anyio
LENGTH = "Inference-Header-Content-Length"
_VARYING = {"x-request-id", "x-queue-time", "x-inference-time", "date"}


def _binary(texts: list[str]) -> tuple[bytes, dict[str, str]]:
    elements = b"".join(len(text.encode()).to_bytes(4, "little") + text.encode() for text in texts)
    header = orjson.dumps(
        {
            "id": "doors",
            "inputs": [
                {
                    "name": "TEXT",
                    "datatype": "BYTES",
                    "shape": [len(texts)],
                    "parameters": {"binary_data_size": len(elements)},
                }
            ],
            "outputs": [{"name": "PROBS", "parameters": {"binary_data": True}}, {"name": "LABEL"}],
        }
    )
    return header + elements, {LENGTH: str(len(header)), **KEY}


TEXT = {"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": ["goal"]}
REQUESTS = [
    ("/v2/models/tiny-en/infer", *_binary(["goal for the team", "bake bread"])),
    ("/v2/models/tiny-en/versions/1/infer", *_binary(["chip"])),
    ("/v2/models/tiny-en/infer", orjson.dumps({"inputs": [TEXT]}), KEY),
    ("/v2/models/tiny-en/infer", b'{"inputs": [', KEY),
    ("/v2/models/tiny-en/infer", orjson.dumps({"inputs": [TEXT]}), {LENGTH: "-1", **KEY}),
    ("/v2/models/nope/infer", orjson.dumps({"inputs": [TEXT]}), KEY),
    ("/v2/models/tiny-en/versions/7/infer", orjson.dumps({"inputs": [TEXT]}), KEY),
    ("/v2/models/tiny-en/versions/1.5/infer", orjson.dumps({"inputs": [TEXT]}), KEY),
    ("/v2/models/tiny-en/versions/latest/infer", orjson.dumps({"inputs": [TEXT]}), KEY),
    ("/v2/models/tiny-en/versions/0/infer", orjson.dumps({"inputs": [TEXT]}), KEY),
    ("/v2/models/tiny-en/infer", orjson.dumps({"inputs": [TEXT]}), {}),
]


async def test_both_doors_answer_alike(tiny_store: Path) -> None:
    settings = Settings(model_store=tiny_store, api_key=API_KEY)
    answers: dict[bool, list[tuple[int, bytes, dict[str, str]]]] = {}
    for hot in (True, False):
        async with running_app(settings, hot_routes=hot) as client:
            answers[hot] = []
            for path, body, headers in REQUESTS:
                answer = await client.post(path, content=body, headers=headers)
                kept = {key: value for key, value in answer.headers.items() if key not in _VARYING}
                answers[hot].append((answer.status_code, answer.content, kept))
    assert [status for status, _, _ in answers[True]] == [
        200,
        200,
        200,
        422,
        422,
        404,
        404,
        422,
        404,
        422,
        401,
    ]
    for hot, fastapi in zip(answers[True], answers[False], strict=True):
        assert hot == fastapi


PREDICTS = [
    ("/predict", {"inputs": "goal for the team"}),
    ("/predict", {"inputs": ["goal", ["bread"]], "raw_scores": True, "parameters": {"top_k": 1}}),
    ("/", {"inputs": "goal"}),
    ("/predict", {"inputs": [["a", "b"]]}),
    ("/predict", {"inputs": []}),
    ("/predict", {"truncate": True}),
    ("/predict", b"{"),
]


async def test_both_doors_of_the_tei_routes_answer_alike(tiny_store: Path) -> None:
    settings = Settings(model_store=tiny_store, api_key=API_KEY)
    answers: dict[bool, list[tuple[int, bytes]]] = {}
    for hot in (True, False):
        async with running_app(settings, hot_routes=hot) as client:
            answers[hot] = []
            for path, body in PREDICTS:
                content = body if isinstance(body, bytes) else orjson.dumps(body)
                answer = await client.post(path, content=content, headers=KEY)
                answers[hot].append((answer.status_code, answer.content))
    assert [status for status, _ in answers[True]] == [200, 200, 200, 422, 422, 422, 422]
    assert answers[True] == answers[False]
