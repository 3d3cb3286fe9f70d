"""``tritonclient.grpc``, unchanged, against a real server process serving gRPC beside HTTP: health,
metadata, configuration, inference with texts and with token ids, the classification extension, a
multi-label model, statistics, the repository index, errors as gRPC status codes, and every score equal to
what ``/classify`` answers for the same text (the HTTP port of the same process)."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from protocol_support import ADMIN, API_KEY, GRPC_MAX_MESSAGE_BYTES, KEY, GrpcServer
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.e2e
TEXTS = ["the striker scored a goal for the team", "bake the bread with cheese", "new laptop chip"]
ZH_TEXTS = ["这个手机很好用", "质量太差了"]
HEADERS = {"authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def client(grpc_server: GrpcServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(grpc_server.target)


def _http(server: GrpcServer, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}{path}", data, headers=dict(KEY))
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def _classified(server: GrpcServer, model: str, texts: list[str]) -> list[dict[str, Any]]:
    return _http(server, "/classify", {"model": model, "texts": texts, "raw_scores": True})["results"]


def _text_input(texts: list[str], column: bool = False) -> triton.InferInput:
    array = np.array([text.encode() for text in texts], dtype=np.object_)
    if column:
        array = array.reshape(-1, 1)
    tensor = triton.InferInput("TEXT", list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return tensor


def _status(error: pytest.ExceptionInfo[InferenceServerException]) -> str:
    return str(error.value.status())


def test_health_and_server_metadata_need_no_key(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata(as_json=True)
    assert metadata["name"] == "lstm-service"
    assert "classification" in metadata["extensions"]


def test_model_calls_need_the_key(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="authorization: Bearer <key>") as error:
        client.get_model_metadata("tiny-en")
    assert _status(error) == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException) as error:
        client.get_model_metadata("tiny-en", headers={"authorization": "Bearer wrong"})
    assert _status(error) == "StatusCode.UNAUTHENTICATED"
    assert client.get_model_metadata("tiny-en", headers={"x-api-key": API_KEY}).name == "tiny-en"
    assert client.is_model_ready("tiny-en", headers=HEADERS)


def test_metadata_and_config_say_what_the_http_routes_say(
    client: triton.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    for model in ("tiny-en", "tiny-tags"):
        metadata = client.get_model_metadata(model, headers=HEADERS, as_json=True)
        http = _http(grpc_server, f"/v2/models/{model}")
        assert metadata == {
            **http,
            "inputs": _with_int_shapes(http["inputs"]),
            "outputs": _with_int_shapes(http["outputs"]),
        }
        config = client.get_model_config(model, "1", headers=HEADERS, as_json=True)["config"]
        http_config = _http(grpc_server, f"/v2/models/{model}/config")
        assert config["max_batch_size"] == http_config["max_batch_size"] == 256
        assert [tensor["name"] for tensor in config["output"]] == [t["name"] for t in http_config["output"]]
        assert config["parameters"] == http_config["parameters"]
    tags = client.get_model_config("tiny-tags", headers=HEADERS).config
    assert json.loads(tags.parameters["thresholds"].string_value)["sports"] == pytest.approx(0.25)


def _with_int_shapes(tensors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # protobuf's JSON writes int64 as strings
    return [{**tensor, "shape": [str(size) for size in tensor["shape"]]} for tensor in tensors]


@pytest.mark.parametrize(("model", "texts"), [("tiny-en", TEXTS), ("tiny-zh", ZH_TEXTS)])
def test_infer_with_texts_equals_classify(
    client: triton.InferenceServerClient, grpc_server: GrpcServer, model: str, texts: list[str]
) -> None:
    classified = _classified(grpc_server, model, texts)
    outputs = [triton.InferRequestedOutput(name) for name in ("PROBS", "LOGITS", "LABEL")]
    result = client.infer(model, [_text_input(texts)], outputs=outputs, headers=HEADERS, request_id="r-1")
    names = list(classified[0]["scores"])
    expected = np.array([[row["scores"][name] for name in names] for row in classified], dtype=np.float32)
    label_order = _label_order(grpc_server, model)
    probabilities = result.as_numpy("PROBS")
    assert probabilities.shape == (len(texts), len(label_order))
    by_name = {label: probabilities[:, index] for index, label in enumerate(label_order)}
    np.testing.assert_allclose(np.stack([by_name[name] for name in names], axis=1), expected, atol=1e-6)
    assert [label.decode() for label in result.as_numpy("LABEL")] == [row["label"] for row in classified]
    assert result.as_numpy("LOGITS").shape == probabilities.shape
    response = result.get_response()
    assert response.model_name == model and response.model_version == "1" and response.id == "r-1"


def _label_order(server: GrpcServer, model: str) -> list[str]:
    """The model's labels in the order of its PROBS columns (the classification extension's indices)."""
    classes = _http(server, f"/v2/models/{model}")["outputs"][0]["shape"][1]
    body = {
        "inputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": ["x"]}],
        "outputs": [{"name": "PROBS", "parameters": {"classification": classes}}],
    }
    answer = _http(server, f"/v2/models/{model}/infer", body)
    order: dict[int, str] = {}
    for item in answer["outputs"][0]["data"]:
        _, index, label = item.split(":", 2)
        order[int(index)] = label
    return [order[index] for index in range(classes)]


DEFAULT_TEXTS = {
    "news-topic": [
        "Shares in the bank fell sharply after it reported a loss for the third quarter.",
        "The striker scored twice as the champions won the cup final.",
        "Ministers will vote on the new election law next week.",
        "The film won the award for best director at the festival.",
        "The new phone chip doubles battery life, the company said.",
    ],
    "review-sentiment-zh": ["质量很好，物流也快，非常满意", "太差了，用了两天就坏了", "还可以吧，价格有点贵"],
}


@pytest.mark.parametrize("model", sorted(DEFAULT_TEXTS))
def test_the_default_models_answer_as_classify(
    client: triton.InferenceServerClient, grpc_server: GrpcServer, model: str
) -> None:
    texts = DEFAULT_TEXTS[model]
    classified = _classified(grpc_server, model, texts)
    result = client.infer(model, [_text_input(texts)], headers=HEADERS)
    order = _label_order(grpc_server, model)
    expected = [[row["scores"][label] for label in order] for row in classified]
    np.testing.assert_allclose(result.as_numpy("PROBS"), np.array(expected), rtol=0, atol=1e-6)
    assert [label.decode() for label in result.as_numpy("LABEL")] == [row["label"] for row in classified]


def test_a_column_of_texts_and_token_ids_answer_the_same(
    client: triton.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    by_text = client.infer("tiny-en", [_text_input(TEXTS)], headers=HEADERS).as_numpy("PROBS")
    by_column = client.infer("tiny-en", [_text_input(TEXTS, column=True)], headers=HEADERS).as_numpy("PROBS")
    np.testing.assert_array_equal(by_column, by_text)
    tokenized = _http(grpc_server, "/tokenize", {"model": "tiny-en", "texts": TEXTS})["results"]
    rows = [[token["id"] for token in result["tokens"]] for result in tokenized]
    width = max(len(row) for row in rows)
    ids = np.array([row + [0] * (width - len(row)) for row in rows], dtype=np.int64)
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    inputs = [
        triton.InferInput("INPUT_IDS", list(ids.shape), "INT64"),
        triton.InferInput("LENGTHS", [3], "INT64"),
    ]
    inputs[0].set_data_from_numpy(ids)
    inputs[1].set_data_from_numpy(lengths)
    by_ids = client.infer("tiny-en", inputs, headers=HEADERS).as_numpy("PROBS")
    np.testing.assert_allclose(by_ids, by_text, atol=1e-6)


def test_the_classification_extension_ranks_the_classes(client: triton.InferenceServerClient) -> None:
    outputs = [triton.InferRequestedOutput("PROBS"), triton.InferRequestedOutput("LOGITS", class_count=2)]
    result = client.infer("tiny-en", [_text_input(TEXTS)], outputs=outputs, headers=HEADERS)
    ranked = result.as_numpy("LOGITS")
    assert ranked.shape == (3, 2)
    probabilities = result.as_numpy("PROBS")
    for row, items in zip(probabilities, ranked, strict=True):
        indices = [int(item.decode().split(":")[1]) for item in items]
        assert indices == list(np.argsort(-row, kind="stable")[:2])


def test_a_multi_label_model_answers_as_classify(
    client: triton.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    texts = ["the match and the election", "a song on the guitar"]
    classified = _classified(grpc_server, "tiny-tags", texts)
    result = client.infer("tiny-tags", [_text_input(texts)], headers=HEADERS)
    decided = [[label.decode() for label in row if label] for row in result.as_numpy("LABELS")]
    assert decided == [row["labels"] for row in classified]
    order = _label_order(grpc_server, "tiny-tags")
    for row, scores in zip(classified, result.as_numpy("PROBS"), strict=True):
        np.testing.assert_allclose(scores, [row["scores"][label] for label in order], atol=1e-6)


def test_statistics_count_grpc_requests_and_the_index_needs_the_admin_token(
    client: triton.InferenceServerClient,
) -> None:
    before = client.get_inference_statistics("tiny-zh", headers=HEADERS).model_stats[0]
    probabilities = [triton.InferRequestedOutput("PROBS")]  # one model call (hidden states are another)
    client.infer("tiny-zh", [_text_input(ZH_TEXTS)], outputs=probabilities, headers=HEADERS)
    after = client.get_inference_statistics("tiny-zh", headers=HEADERS).model_stats[0]
    assert after.inference_count == before.inference_count + 2
    assert after.inference_stats.success.count == before.inference_stats.success.count + 1
    every = client.get_inference_statistics(headers=HEADERS).model_stats
    assert {stat.name for stat in every} >= {"tiny-en", "tiny-tags", "tiny-zh", "news-topic"}
    with pytest.raises(InferenceServerException) as error:
        client.get_model_repository_index(headers=HEADERS)
    assert _status(error) == "StatusCode.UNAUTHENTICATED"
    index = client.get_model_repository_index(headers={"authorization": ADMIN["Authorization"]})
    assert [(model.name, model.state) for model in index.models] == [
        ("news-topic", "READY"), ("review-sentiment-zh", "READY"),
        ("tiny-en", "READY"), ("tiny-tags", "READY"), ("tiny-zh", "READY"),
    ]  # fmt: skip


def _refused(client: triton.InferenceServerClient, model: str, inputs: list[Any], **options: Any) -> Any:
    with pytest.raises(InferenceServerException) as error:
        client.infer(model, inputs, headers=HEADERS, **options)
    return error


def test_malformed_requests_get_status_codes_with_clear_messages(
    client: triton.InferenceServerClient,
) -> None:
    wrong_type = triton.InferInput("TEXT", [2], "INT64")
    wrong_type.set_data_from_numpy(np.array([1, 2], dtype=np.int64))
    error = _refused(client, "tiny-en", [wrong_type])
    assert _status(error) == "StatusCode.INVALID_ARGUMENT"
    assert error.value.message() == "input TEXT: datatype 'INT64', expected BYTES"

    short = _text_input(TEXTS[:2])
    short.set_shape([3])  # the shape promises three texts, the data holds two
    error = _refused(client, "tiny-en", [short])
    assert _status(error) == "StatusCode.INVALID_ARGUMENT"
    assert "element 2 has no 4-byte length" in error.value.message()

    lengths_only = triton.InferInput("LENGTHS", [1], "INT64")
    lengths_only.set_data_from_numpy(np.array([3], dtype=np.int64))
    error = _refused(client, "tiny-en", [lengths_only])
    assert _status(error) == "StatusCode.INVALID_ARGUMENT"
    assert error.value.message() == "send either TEXT, or INPUT_IDS with LENGTHS (got LENGTHS)"

    matrix = triton.InferInput("TEXT", [1, 2], "BYTES")
    matrix.set_data_from_numpy(np.array([[b"a", b"b"]], dtype=np.object_))
    error = _refused(client, "tiny-en", [matrix])
    assert error.value.message() == "input TEXT: shape [1, 2], expected [N] or [N, 1]"

    error = _refused(client, "tiny-en", [_text_input(TEXTS)], outputs=[triton.InferRequestedOutput("LABELS")])
    assert (
        _status(error) == "StatusCode.INVALID_ARGUMENT" and "unknown output 'LABELS'" in error.value.message()
    )

    error = _refused(client, "no-such-model", [_text_input(TEXTS)])
    assert _status(error) == "StatusCode.NOT_FOUND" and "no-such-model" in error.value.message()
    error = _refused(client, "tiny-en", [_text_input(TEXTS)], model_version="1.5")
    assert _status(error) == "StatusCode.INVALID_ARGUMENT"
    error = _refused(client, "tiny-en", [_text_input(TEXTS)], model_version="x")  # an alias it lacks
    assert _status(error) == "StatusCode.NOT_FOUND" and "no alias 'x'" in error.value.message()
    error = _refused(client, "tiny-en", [_text_input(TEXTS)], model_version="7")
    assert _status(error) == "StatusCode.NOT_FOUND"

    error = _refused(client, "tiny-en", [_text_input(["word " * (GRPC_MAX_MESSAGE_BYTES // 5)])])
    assert _status(error) == "StatusCode.RESOURCE_EXHAUSTED"
    assert str(GRPC_MAX_MESSAGE_BYTES) in error.value.message()

    assert client.infer("tiny-en", [_text_input(TEXTS)], headers=HEADERS).as_numpy("PROBS").shape == (3, 3)


def test_the_error_kind_travels_in_the_trailing_metadata(grpc_server: GrpcServer) -> None:
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    with grpc.insecure_channel(grpc_server.target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="tiny-en"), timeout=30)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert ("error-type", "unauthorized") in tuple(error.value.trailing_metadata())


def test_calls_are_logged_and_counted_like_http_requests(
    client: triton.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    route = "/inference.GRPCInferenceService/ModelInfer"
    client.infer("tiny-en", [_text_input(TEXTS)], headers={**HEADERS, "x-request-id": "grpc-call-1"})
    _refused(client, "no-such-model", [_text_input(TEXTS)])
    deadline = time.monotonic() + 30  # the access log is written in bulk
    while True:
        lines = [line for line in grpc_server.live.log_records() if line.get("route") == route]
        logged = [line for line in lines if line.get("request_id") == "grpc-call-1"]
        if logged or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert logged and logged[0]["status"] == 200 and logged[0]["model"] == "tiny-en"
    assert any(line["status"] == 404 for line in lines)
    with urllib.request.urlopen(f"{grpc_server.url}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    counted = [
        line for line in text.splitlines() if line.startswith("lstm_service_requests_total") and route in line
    ]
    assert any('status="200"' in line for line in counted) and any('status="404"' in line for line in counted)


def test_the_repository_calls_unload_and_load_with_the_admin_token(
    client: triton.InferenceServerClient,
) -> None:
    admin = {"authorization": ADMIN["Authorization"]}
    with pytest.raises(InferenceServerException) as error:
        client.unload_model("tiny-zh", headers=HEADERS)  # the API key is not the admin token
    assert _status(error) == "StatusCode.UNAUTHENTICATED"
    client.unload_model("tiny-zh", headers=admin)
    with pytest.raises(InferenceServerException) as error:
        client.infer("tiny-zh", [_text_input(ZH_TEXTS)], headers=HEADERS)
    assert _status(error) == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as error:
        client.load_model("tiny-zh", headers=admin, config='{"max_batch_size": 8}')
    assert _status(error) == "StatusCode.INVALID_ARGUMENT" and "not supported" in error.value.message()
    with pytest.raises(InferenceServerException) as error:
        client.load_model("no-such-model", headers=admin)
    assert _status(error) == "StatusCode.NOT_FOUND" and "not in the store" in error.value.message()
    client.load_model("tiny-zh", headers=admin)
    assert client.is_model_ready("tiny-zh", headers=HEADERS)
    assert client.infer("tiny-zh", [_text_input(ZH_TEXTS)], headers=HEADERS).as_numpy("PROBS").shape == (2, 2)


def test_model_infer_names_a_version_by_alias(
    client: triton.InferenceServerClient, grpc_server: GrpcServer
) -> None:
    def admin(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {**ADMIN, "Content-Type": "application/json"}
        request = urllib.request.Request(f"{grpc_server.url}{path}", data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)

    admin("PUT", "/admin/models/tiny-zh/aliases/blue", {"version": 1})
    try:
        answer = client.infer(
            "tiny-zh", [_text_input(["今天天气很好"])], model_version="blue", headers=HEADERS
        )
        assert answer.get_response().model_version == "1"
        metadata = client.get_model_metadata("tiny-zh", "blue", headers=HEADERS)
        assert list(metadata.versions) == ["1"]
        assert client.is_model_ready("tiny-zh", "blue", headers=HEADERS)
        with pytest.raises(InferenceServerException) as error:
            client.infer("tiny-zh", [_text_input(["好"])], model_version="green", headers=HEADERS)
        assert _status(error) == "StatusCode.NOT_FOUND" and "no alias 'green'" in error.value.message()
    finally:
        admin("DELETE", "/admin/models/tiny-zh/aliases/blue")
