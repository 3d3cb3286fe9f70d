"""``tritonclient[http]``, unchanged, against a real server process: health, metadata, configuration,
inference (binary and JSON, both ways), the classification extension, token ids, statistics, and every
score equal to what ``/classify`` answers for the same text."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from protocol_support import ADMIN, KEY, Server
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.e2e
# tritonclient writes Inference-Header-Content-Length into the headers dict it is given: pass a fresh one.
MODEL = "tiny-en"
TEXTS = ["the striker scored a goal for the team", "bake the bread with cheese", "new laptop chip"]


@pytest.fixture(scope="module")
def client(server: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(f"127.0.0.1:{server.port}")


def _post(server: Server, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"{server.url}{path}", json.dumps(body).encode(), headers=dict(KEY))
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def classified(server: Server) -> list[dict[str, Any]]:
    """/classify's answer for TEXTS: the reference every protocol must reproduce."""
    return _post(server, "/classify", {"model": MODEL, "texts": TEXTS, "raw_scores": True})["results"]


def _text_input(texts: list[str], binary: bool = True, column: bool = False) -> triton.InferInput:
    array = np.array([text.encode() for text in texts], dtype=np.object_)
    if column:
        array = array.reshape(-1, 1)
    tensor = triton.InferInput("TEXT", list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def _expected_probabilities(classified: list[dict[str, Any]], labels: list[str]) -> np.ndarray:
    return np.array(
        [[result["scores"][label] for label in labels] for result in classified], dtype=np.float32
    )


def test_health_needs_no_key_and_is_judged_by_status(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()


def test_model_routes_need_the_key(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="unauthorized"):
        client.get_model_metadata(MODEL)
    assert client.is_model_ready(MODEL, headers=dict(KEY))
    assert not client.is_model_ready(MODEL)  # 401 without the key: the client reads the status only


def test_metadata_and_config(client: triton.InferenceServerClient) -> None:
    metadata = client.get_model_metadata(MODEL, headers=dict(KEY))
    assert metadata["name"] == MODEL and metadata["versions"] == ["1"]
    assert metadata["platform"] == "onnxruntime_onnx"
    outputs = {tensor["name"]: tensor for tensor in metadata["outputs"]}
    assert outputs["PROBS"] == {"name": "PROBS", "datatype": "FP32", "shape": [-1, 3]}
    assert outputs["HIDDEN_STATES"]["shape"][:2] == [-1, -1]
    assert [tensor["name"] for tensor in metadata["inputs"]] == ["TEXT", "INPUT_IDS", "LENGTHS"]
    config = client.get_model_config(MODEL, headers=dict(KEY))
    assert config["max_batch_size"] == 256 and config["platform"] == "onnxruntime_onnx"
    assert {tensor["name"] for tensor in config["output"]} == set(outputs)
    assert client.get_model_metadata(MODEL, "1", headers=dict(KEY)) == metadata
    assert client.get_server_metadata()["extensions"] == [
        "binary_tensor_data",
        "classification",
        "model_repository",
        "statistics",
    ]


def test_binary_text_in_binary_outputs_out_equal_classify(
    client: triton.InferenceServerClient, classified: list[dict[str, Any]]
) -> None:
    result = client.infer(
        MODEL, [_text_input(TEXTS)], request_id="req-7", headers=dict(KEY)
    )  # all outputs, binary
    assert result.get_response()["id"] == "req-7"
    label_names = list(classified[0]["scores"])
    probabilities = result.as_numpy("PROBS")
    assert probabilities.dtype == np.float32
    np.testing.assert_array_equal(probabilities, _expected_probabilities(classified, label_names))
    assert [label.decode() for label in result.as_numpy("LABEL")] == [r["label"] for r in classified]
    expected_logits = [[result["logits"][label] for label in label_names] for result in classified]
    np.testing.assert_array_equal(result.as_numpy("LOGITS"), np.array(expected_logits, dtype=np.float32))
    hidden = result.as_numpy("HIDDEN_STATES")
    h_n = result.as_numpy("H_N")
    assert hidden.shape[0] == 3 and h_n.shape[0] == 3 and result.as_numpy("C_N").shape == h_n.shape
    assert result.get_output("PROBS")["parameters"]["binary_data_size"] == 3 * 3 * 4


def test_json_text_in_json_outputs_out_equal_classify(
    client: triton.InferenceServerClient, classified: list[dict[str, Any]]
) -> None:
    outputs = [
        triton.InferRequestedOutput("PROBS", binary_data=False),
        triton.InferRequestedOutput("LABEL", binary_data=False),
    ]
    result = client.infer(
        MODEL, [_text_input(TEXTS, binary=False, column=True)], outputs=outputs, headers=KEY
    )
    assert "parameters" not in result.get_output("PROBS")  # sent as JSON data
    label_names = list(classified[0]["scores"])
    np.testing.assert_array_equal(result.as_numpy("PROBS"), _expected_probabilities(classified, label_names))
    assert result.as_numpy("LABEL").tolist() == [r["label"] for r in classified]


def test_classification_extension(
    client: triton.InferenceServerClient, classified: list[dict[str, Any]]
) -> None:
    outputs = [triton.InferRequestedOutput("PROBS", class_count=2)]
    result = client.infer(MODEL, [_text_input(TEXTS)], outputs=outputs, headers=dict(KEY))
    ranked = result.as_numpy("PROBS")
    assert ranked.shape == (3, 2)
    label_names = list(classified[0]["scores"])
    for row, reference in zip(ranked, classified, strict=True):
        score, index, label = row[0].decode().split(":")
        assert label == reference["label"] and label_names[int(index)] == label
        assert np.float32(score) == np.float32(reference["score"])
        second = row[1].decode().split(":")
        assert float(second[0]) <= float(score)


def test_token_ids_with_lengths_score_as_the_text(
    server: Server, client: triton.InferenceServerClient
) -> None:
    tokens = _post(server, "/tokenize", {"model": MODEL, "texts": TEXTS})["results"]
    id_lists = [[token["id"] for token in result["tokens"]] for result in tokens]
    width = max(map(len, id_lists))
    ids = np.zeros((len(id_lists), width), dtype=np.int64)
    for row, token_ids in enumerate(id_lists):
        ids[row, : len(token_ids)] = token_ids
    lengths = np.array([len(token_ids) for token_ids in id_lists], dtype=np.int64)
    ids_input = triton.InferInput("INPUT_IDS", list(ids.shape), "INT64")
    ids_input.set_data_from_numpy(ids)
    lengths_input = triton.InferInput("LENGTHS", list(lengths.shape), "INT64")
    lengths_input.set_data_from_numpy(lengths)
    outputs = [triton.InferRequestedOutput("PROBS")]
    by_ids = client.infer(MODEL, [ids_input, lengths_input], outputs=outputs, headers=dict(KEY)).as_numpy(
        "PROBS"
    )
    by_text = client.infer(MODEL, [_text_input(TEXTS)], outputs=outputs, headers=dict(KEY)).as_numpy("PROBS")
    np.testing.assert_array_equal(by_ids, by_text)


def test_statistics_count_the_inferences(client: triton.InferenceServerClient) -> None:
    before = client.get_inference_statistics(MODEL, headers=dict(KEY))["model_stats"][0]
    client.infer(
        MODEL, [_text_input(TEXTS)], outputs=[triton.InferRequestedOutput("PROBS")], headers=dict(KEY)
    )
    after = client.get_inference_statistics(MODEL, "1", headers=dict(KEY))["model_stats"][0]
    assert after["name"] == MODEL and after["version"] == "1"
    assert after["inference_count"] == before["inference_count"] + 3
    success = after["inference_stats"]["success"]
    assert success["count"] == before["inference_stats"]["success"]["count"] + 1 and success["ns"] > 0
    assert after["execution_count"] > before["execution_count"] and after["last_inference"] > 0
    everything = client.get_inference_statistics(headers=dict(KEY))["model_stats"]
    assert {stat["name"] for stat in everything} == {"tiny-en", "tiny-zh"}


def test_errors_reach_the_client_as_its_exception(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="unknown output 'NOPE'") as raised:
        client.infer(
            MODEL, [_text_input(TEXTS)], outputs=[triton.InferRequestedOutput("NOPE")], headers=dict(KEY)
        )
    assert raised.value.status() == "422"
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.infer("no-such-model", [_text_input(TEXTS)], headers=dict(KEY))


def test_model_repository_maps_onto_the_admin_operations(client: triton.InferenceServerClient) -> None:
    index = client.get_model_repository_index(headers=dict(ADMIN))
    assert {entry["name"]: entry["state"] for entry in index} == {"tiny-en": "READY", "tiny-zh": "READY"}
    with pytest.raises(InferenceServerException, match="unauthorized"):
        client.unload_model("tiny-zh", headers=dict(KEY))
    client.unload_model("tiny-zh", headers=dict(ADMIN))
    assert not client.is_model_ready("tiny-zh", headers=dict(KEY))
    states = {entry["name"]: entry for entry in client.get_model_repository_index(headers=dict(ADMIN))}
    assert states["tiny-zh"]["state"] == "UNAVAILABLE"
    client.load_model("tiny-zh", headers=dict(ADMIN))
    assert client.is_model_ready("tiny-zh", headers=dict(KEY))


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(client: triton.InferenceServerClient, algorithm: str) -> None:
    outputs = [triton.InferRequestedOutput("LABEL")]
    result = client.infer(
        MODEL,
        [_text_input(TEXTS)],
        outputs=outputs,
        headers=dict(KEY),
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,  # asked for, not used: the client reads what it gets
    )
    assert [label.decode() for label in result.as_numpy("LABEL")] == ["sport", "food", "tech"]
