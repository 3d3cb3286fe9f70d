"""Every malformed Open Inference Protocol request gets a 4xx with the standard error body, and the app
keeps answering: the binary framing, shapes, datatypes, ids, lengths, names, classification counts and
the body limit."""

from __future__ import annotations

import gzip
import struct
import zlib
from typing import Any

import httpx
import orjson
import pytest

pytestmark = pytest.mark.anyio
INFER = "/v2/models/tiny-en/infer"
LENGTH = "Inference-Header-Content-Length"


def text_tensor(texts: list[str], shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": "TEXT", "datatype": "BYTES", "shape": shape or [len(texts)], "data": texts}


def framed(inputs: list[dict[str, Any]], binary: bytes, **extra: Any) -> tuple[bytes, dict[str, str]]:
    """A binary request: the JSON header, then ``binary``; the header length in its header."""
    header = orjson.dumps({"inputs": inputs, **extra})
    return header + binary, {LENGTH: str(len(header))}


def element(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


async def check_refused(
    client: httpx.AsyncClient, answer: httpx.Response, status: int, fragment: str
) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) >= {"error", "error_type"} and fragment in body["error"], body
    still = await client.post(INFER, json={"inputs": [text_tensor(["goal"])], "outputs": [{"name": "LABEL"}]})
    assert still.status_code == 200 and still.json()["outputs"][0]["data"] == ["sport"]


def binary_text(size: int) -> dict[str, Any]:
    return {"name": "TEXT", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": size}}


FRAMING_CASES = [
    # (body, headers, status, fragment of the message)
    (b'{"inputs": []}', {LENGTH: "99"}, 422, "only 14 bytes"),
    (b'{"inputs": []}', {LENGTH: "-3"}, 422, "non-negative integer"),
    (b'{"inputs": []}', {LENGTH: "fourteen"}, 422, "non-negative integer"),
    (*framed([binary_text(10)], element(b"goal")), 422, "declare 10 bytes"),
    (*framed([binary_text(4)], element(b"goal")), 422, "declare 4 bytes"),
    (*framed([binary_text(8)], struct.pack("<I", 100) + b"goal"), 422, "declares 100 bytes"),
    (*framed([binary_text(3)], b"\x01\x00\x00"), 422, "no 4-byte length"),
    (*framed([binary_text(8)], element(b"\xff\xfeal")), 422, "not valid UTF-8"),
    (*framed([binary_text(12)], element(b"goal") + element(b"")), 422, "4 bytes left"),
    (orjson.dumps({"inputs": [binary_text(8)]}) + element(b"goal"), {}, 422, "not valid JSON"),
    (b"", {}, 422, "empty"),
    (b"[]", {}, 422, "JSON object"),
    (b"{", {}, 422, "not valid JSON"),
]


@pytest.mark.parametrize(("body", "headers", "status", "fragment"), FRAMING_CASES)
async def test_malformed_framing(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str], status: int, fragment: str
) -> None:
    await check_refused(client, await client.post(INFER, content=body, headers=headers), status, fragment)


IDS = {"name": "INPUT_IDS", "datatype": "INT64", "shape": [1, 2], "data": [5, 6]}
LENGTHS = {"name": "LENGTHS", "datatype": "INT64", "shape": [1], "data": [2]}

JSON_CASES = [
    # (request, fragment of the message)
    ({"inputs": [text_tensor(["a", "b"], [1])]}, "2 elements in data"),
    ({"inputs": [text_tensor(["a"], [2])]}, "1 elements in data"),
    ({"inputs": [text_tensor(["a"], [-1])]}, "negative dimension"),
    ({"inputs": [text_tensor(["a"], [2**62, 2**62])]}, "expected [N] or [N, 1]"),
    ({"inputs": [text_tensor(["a"], [2**62])]}, "at most 256"),
    ({"inputs": [text_tensor(["a"] * 257)]}, "at most 256"),
    ({"inputs": [text_tensor([], [0])]}, "0 rows"),
    ({"inputs": [text_tensor(["a"], [1, 2])]}, "expected [N] or [N, 1]"),
    ({"inputs": [{**text_tensor(["a"]), "datatype": "FP32", "data": [1.0]}]}, "expected BYTES"),
    ({"inputs": [{**IDS, "datatype": "BYTES", "data": ["5", "6"]}, LENGTHS]}, "expected INT64"),
    ({"inputs": [{**IDS, "data": [5, -1]}, LENGTHS]}, "[0, 55)"),
    ({"inputs": [{**IDS, "data": [5, 55]}, LENGTHS]}, "[0, 55)"),
    ({"inputs": [IDS, {**LENGTHS, "data": [0]}]}, "[1, 2]"),
    ({"inputs": [IDS, {**LENGTHS, "data": [3]}]}, "[1, 2]"),
    ({"inputs": [IDS, {**LENGTHS, "shape": [2], "data": [1, 1]}]}, "LENGTHS has 2 rows"),
    ({"inputs": [{**IDS, "shape": [1, 65], "data": [5] * 65}, LENGTHS]}, "1 to 64"),
    ({"inputs": [{**IDS, "shape": [2], "data": [5, 6]}, LENGTHS]}, "expected [N, T]"),
    ({"inputs": [IDS]}, "send either TEXT"),
    ({"inputs": [text_tensor(["a"]), IDS, LENGTHS]}, "send either TEXT"),
    ({"inputs": [text_tensor(["a"]), text_tensor(["b"])]}, "send either TEXT"),
    ({"inputs": [{**text_tensor(["a"]), "name": "TOKENS"}]}, "unknown input 'TOKENS'"),
    ({"inputs": [text_tensor(["a"])], "outputs": [{"name": "SCORES"}]}, "unknown output 'SCORES'"),
    ({"inputs": [text_tensor(["a"])], "outputs": [{"name": "LABEL"}, {"name": "LABEL"}]}, "twice"),
    (
        {
            "inputs": [text_tensor(["goal"])],
            "outputs": [_k := {"name": "PROBS", "parameters": {"classification": 0}}],
        },
        "classification 0",
    ),  # noqa: E501
    (
        {"inputs": [text_tensor(["goal"])], "outputs": [{**_k, "parameters": {"classification": -2}}]},
        "classification -2",
    ),  # noqa: E501
    (
        {"inputs": [text_tensor(["goal"])], "outputs": [{**_k, "parameters": {"classification": 4}}]},
        "1 to 3 labels",
    ),  # noqa: E501
    (
        {"inputs": [text_tensor(["goal"])], "outputs": [{**_k, "parameters": {"classification": "2"}}]},
        "classification",
    ),  # noqa: E501
    (
        {
            "inputs": [text_tensor(["goal"])],
            "outputs": [{"name": "LABEL", "parameters": {"classification": 1}}],
        },
        "applies to PROBS",
    ),  # noqa: E501
    ({"inputs": [{**text_tensor(["a"]), "parameters": {"binary_data_size": 0}}]}, "not both"),
    ({"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1]}]}, "no data"),
    ({"inputs": [text_tensor(["   "])]}, "no tokens"),
    ({"inputs": [text_tensor(["x" * 20_001])]}, "20001 characters"),
    ({"inputs": [text_tensor(["goal " * 100])], "parameters": {"truncate": False}}, 'send "truncate"'),
    (
        b'{"inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": ["\\ud800"]}]}',
        "not valid JSON",
    ),  # a lone surrogate is no text
    ({"inputs": [text_tensor([1])]}, "must be strings"),
    ({"inputs": [{**text_tensor(["a"]), "shape": ["1"]}]}, "inputs.0.shape.0"),
    ({"inputs": []}, "inputs"),
    ({"inputs": [text_tensor(["a"])], "id": 7}, "id"),
    ({"inputs": [text_tensor(["a"])], "parameters": {"binary_data_output": "yes"}}, "binary_data_output"),
]


@pytest.mark.parametrize(("request_body", "fragment"), JSON_CASES)
async def test_malformed_json_requests(
    client: httpx.AsyncClient, request_body: dict[str, Any] | bytes, fragment: str
) -> None:
    content = request_body if isinstance(request_body, bytes) else orjson.dumps(request_body)
    await check_refused(client, await client.post(INFER, content=content), 422, fragment)


async def test_unknown_models_and_versions_are_404(client: httpx.AsyncClient) -> None:
    body = {"inputs": [text_tensor(["goal"])]}
    await check_refused(client, await client.post("/v2/models/nope/infer", json=body), 404, "unknown model")
    answer = await client.post("/v2/models/tiny-en/versions/9/infer", json=body)
    await check_refused(client, answer, 404, "no loaded version 9")
    answer = await client.post("/v2/models/tiny-en/versions/latest/infer", json=body)  # an alias it lacks
    await check_refused(client, answer, 404, "no alias 'latest'")
    answer = await client.post("/v2/models/tiny-en/versions/1.5/infer", json=body)
    await check_refused(client, answer, 422, "version")


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    body = orjson.dumps({"inputs": [text_tensor(["goal " * 250_000])]})
    await check_refused(client, await client.post(INFER, content=body), 413, "larger than")


async def test_unknown_parameters_and_extra_keys_are_ignored(client: httpx.AsyncClient) -> None:
    body = {
        "model_name": "tiny-en",  # the kserve client adds it
        "id": "x-1",
        "parameters": {"priority": 3, "custom": {"a": 1}},
        "inputs": [{**text_tensor(["goal"]), "parameters": {"content_type": "str"}}],
        "outputs": [{"name": "LABEL", "parameters": {"custom": True}}],
    }
    answer = await client.post(INFER, json=body)
    assert answer.status_code == 200
    assert answer.json()["id"] == "x-1" and answer.json()["outputs"][0]["data"] == ["sport"]


async def test_compressed_bodies_are_bounded_and_checked(client: httpx.AsyncClient) -> None:
    request = orjson.dumps({"inputs": [text_tensor(["goal"])], "outputs": [{"name": "LABEL"}]})
    answer = await client.post(INFER, content=gzip.compress(request), headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 200 and answer.json()["outputs"][0]["data"] == ["sport"]
    bomb = gzip.compress(b" " * (2 << 20))  # 2 MiB of spaces: a few KB on the wire, past the 1 MiB limit
    sent = await client.post(INFER, content=bomb, headers={"Content-Encoding": "gzip"})
    await check_refused(client, sent, 413, "inflates past")
    cases = [
        (b"not gzip at all", "gzip", "not valid gzip"),
        (gzip.compress(request)[:-6], "gzip", "complete gzip stream"),
        (zlib.compress(request) + b"tail", "deflate", "complete deflate stream"),
        (request, "br", "'br' is not supported"),
    ]
    for body, encoding, fragment in cases:
        sent = await client.post(INFER, content=body, headers={"Content-Encoding": encoding})
        await check_refused(client, sent, 422, fragment)
