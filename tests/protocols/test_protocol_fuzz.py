"""Fuzzing the Open Inference Protocol and TEI routes of the in-process app: never a 5xx.

- Schema-driven (schemathesis), as ``tests/service/test_schema_fuzz.py`` fuzzes the native routes: every
  operation with data that fits its documented schema and data that does not; answers must keep the
  document's promises (status codes, content types, bodies).
- Byte-level, for the binary framing the schema cannot describe: real ``tritonclient`` bodies with bytes
  flipped, cut, inserted or appended, and header lengths that lie. Every answer is a 200 or a 4xx with
  the standard error body.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from starlette.testclient import TestClient
from support.apps import ADMIN_TOKEN
from support.stores import copy_store
from tritonclient.http import InferInput, InferRequestedOutput
from tritonclient.http._utils import _get_inference_request

from service.api.app import create_app
from service.settings import Settings

OPERATIONS = [
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/stats"),
    ("GET", "/v2/models/{name}"),
    ("GET", "/v2/models/{name}/config"),
    ("GET", "/v2/models/{name}/ready"),
    ("GET", "/v2/models/{name}/stats"),
    ("GET", "/v2/models/{name}/versions/{version}"),
    ("GET", "/v2/models/{name}/versions/{version}/config"),
    ("GET", "/v2/models/{name}/versions/{version}/ready"),
    ("GET", "/v2/models/{name}/versions/{version}/stats"),
    ("POST", "/v2/models/{name}/infer"),
    ("POST", "/v2/models/{name}/versions/{version}/infer"),
    ("POST", "/v2/repository/index"),
    ("POST", "/v2/repository/models/{name}/load"),
    ("POST", "/v2/repository/models/{name}/unload"),
    ("POST", "/predict"),
    ("POST", "/"),
    ("GET", "/info"),
    ("POST", "/tei/{name}/predict"),
    ("POST", "/tei/{name}"),
    ("GET", "/tei/{name}/info"),
]
EXAMPLES = 12
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LENGTH = "Inference-Header-Content-Length"


def is_protocol_path(path: str) -> bool:
    return path == "/" or path.startswith(("/v2", "/predict", "/info", "/tei/"))


@pytest.fixture(scope="module")
def app_settings(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    store = copy_store(tiny_store, tmp_path_factory.mktemp("protocol-fuzz") / "store")
    return Settings(model_store=store, admin_token=ADMIN_TOKEN, max_texts=64)


@pytest.fixture(scope="module")
def api_schema(app_settings: Settings) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(app_settings))


def test_every_protocol_operation_is_fuzzed(api_schema: schemathesis.BaseSchema) -> None:
    documented = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert {operation for operation in documented if is_protocol_path(operation[1])} == set(OPERATIONS)


CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or method == "POST" or "{version}" in path
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g}" for m, p, g in CASES])
def test_the_operation_keeps_its_documented_promises(
    api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=ADMIN)
        calls.append(response.status_code)

    check()
    assert calls and all(status < 500 for status in calls)


# -- byte level -------------------------------------------------------------------------------------------


def _seed_bodies() -> list[tuple[bytes, int]]:
    """Valid binary requests as tritonclient writes them: texts; ids with lengths; JSON and binary mixed."""
    texts = InferInput("TEXT", [3], "BYTES")
    texts.set_data_from_numpy(
        np.array([b"goal for the team", b"\xe6\xb1\x89 soup", b"chip"], dtype=np.object_)
    )
    ids = InferInput("INPUT_IDS", [2, 3], "INT64")
    ids.set_data_from_numpy(np.array([[5, 6, 7], [8, 9, 0]], dtype=np.int64))
    lengths = InferInput("LENGTHS", [2], "INT64")
    lengths.set_data_from_numpy(np.array([3, 2], dtype=np.int64), binary_data=False)
    ranked = [InferRequestedOutput("PROBS", class_count=2), InferRequestedOutput("LABEL", binary_data=False)]
    seeds = []
    for inputs, outputs in (([texts], None), ([ids, lengths], ranked), ([texts], ranked)):
        body, json_size = _get_inference_request(inputs, "fuzz", outputs, 0, False, False, 0, None, None)
        seeds.append((body, json_size))
    return seeds


SEEDS = _seed_bodies()


@st.composite
def mutated_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    body, json_size = draw(st.sampled_from(SEEDS))
    data = bytearray(body)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "append", "truncate"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[position : position + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=64))
        else:
            del data[position:]
    length = draw(
        st.one_of(
            st.just(str(json_size)),
            st.integers(-5, len(data) + 5).map(str),
            st.sampled_from(["", " ", "1e3", "0x10", "99999999999999999999", "-0"]),
            st.none(),
        )
    )
    return bytes(data), ({} if length is None else {LENGTH: length})


@pytest.fixture(scope="module")
def live_app(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings), raise_server_exceptions=False) as client:
        yield client


def test_mangled_binary_requests_never_get_a_5xx(live_app: TestClient) -> None:
    statuses: list[int] = []

    @given(request=mutated_requests())
    @settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def check(request: tuple[bytes, dict[str, str]]) -> None:
        body, headers = request
        answer = live_app.post("/v2/models/tiny-en/infer", content=body, headers=headers)
        statuses.append(answer.status_code)
        assert answer.status_code == 200 or 400 <= answer.status_code < 500, answer.text
        if answer.status_code != 200:
            assert set(orjson.loads(answer.content)) >= {"error", "error_type"}

    check()
    assert 200 in statuses and any(400 <= status < 500 for status in statuses)
    assert live_app.get("/v2/health/ready").status_code == 200  # still serving
