"""``huggingface_hub.InferenceClient`` against ``/predict`` and ``/`` of a real server, and TEI's shapes:
one list of ``{"label", "score"}`` per text (best first), the scores ``/classify`` gives, and ``/info``."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import httpx
import numpy as np
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError
from protocol_support import API_KEY, KEY, Server

pytestmark = pytest.mark.anyio

TEXT = "the striker scored a goal for the team"
TEXTS = [TEXT, "bake the bread with cheese"]


def _classify(server: Server, texts: list[str]) -> list[dict[str, Any]]:
    body = json.dumps({"texts": texts}).encode()  # the default model, as /predict uses
    request = urllib.request.Request(f"{server.url}/classify", body, headers=KEY)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["results"]


def _ranked(result: dict[str, Any]) -> list[tuple[str, float]]:
    return sorted(result["scores"].items(), key=lambda item: item[1], reverse=True)


@pytest.mark.e2e
@pytest.mark.parametrize("path", ["/predict", ""])
def test_huggingface_hub_text_classification(server: Server, path: str) -> None:
    client = InferenceClient(model=f"{server.url}{path}", api_key=API_KEY)
    answer = client.text_classification(TEXT)
    # TEI answers one text with a flat list; the client keeps its first element: the best label.
    (expected,) = _classify(server, [TEXT])
    best = answer if not isinstance(answer, list) else answer[0]
    assert (best.label, best.score) == _ranked(expected)[0]


@pytest.mark.e2e
@pytest.mark.parametrize("path", ["/tei/tiny-zh", "/tei/tiny-zh/predict"])
def test_huggingface_hub_reaches_a_model_that_is_not_the_default(server: Server, path: str) -> None:
    text = "质量很好 非常满意"
    answer = InferenceClient(model=f"{server.url}{path}", api_key=API_KEY).text_classification(text)
    body = json.dumps({"texts": [text], "model": "tiny-zh"}).encode()
    request = urllib.request.Request(f"{server.url}/classify", body, headers=KEY)
    with urllib.request.urlopen(request) as response:
        (expected,) = json.load(response)["results"]
    best = answer if not isinstance(answer, list) else answer[0]
    assert (best.label, best.score) == _ranked(expected)[0]


async def test_a_named_model_s_tei_routes_answer_for_that_model(client: httpx.AsyncClient) -> None:
    text = "质量很好"
    named = await client.post("/tei/tiny-zh", json={"inputs": text})
    reference = (await client.post("/classify", json={"text": text, "model": "tiny-zh"})).json()["results"][0]
    assert named.status_code == 200
    assert [(item["label"], item["score"]) for item in named.json()] == _ranked(reference)
    info = (await client.get("/tei/tiny-zh/info")).json()
    assert info["model_id"] == "tiny-zh" and (await client.get("/info")).json()["model_id"] == "tiny-en"
    for unknown in ("/tei/nope", "/tei/nope/predict"):
        missing = await client.post(unknown, json={"inputs": text})
        assert missing.status_code == 404 and missing.json()["error_type"] == "not_found"
    assert (await client.get("/tei/nope/info")).status_code == 404


@pytest.mark.e2e
def test_huggingface_hub_needs_the_key(server: Server) -> None:
    with pytest.raises(HfHubHTTPError, match="401"):
        InferenceClient(model=f"{server.url}/predict").text_classification(TEXT)


async def test_one_text_gets_a_flat_list_best_first(client: httpx.AsyncClient) -> None:
    answer = await client.post("/predict", json={"inputs": TEXT})
    assert answer.status_code == 200
    reference = (await client.post("/classify", json={"text": TEXT})).json()["results"][0]
    assert [(item["label"], item["score"]) for item in answer.json()] == _ranked(reference)


async def test_several_texts_get_one_list_each(client: httpx.AsyncClient) -> None:
    references = (await client.post("/classify", json={"texts": TEXTS})).json()["results"]
    for inputs in (TEXTS, [[text] for text in TEXTS]):  # plain texts, or TEI's batch form
        answer = await client.post("/predict", json={"inputs": inputs, "truncate": True})
        assert answer.status_code == 200
        rows = answer.json()
        assert [[(item["label"], item["score"]) for item in row] for row in rows] == [
            _ranked(reference) for reference in references
        ]


async def test_raw_scores_are_the_logits(client: httpx.AsyncClient) -> None:
    raw = (await client.post("/predict", json={"inputs": TEXT, "raw_scores": True})).json()
    probabilities = (await client.post("/predict", json={"inputs": TEXT})).json()
    assert [item["label"] for item in raw] == [item["label"] for item in probabilities]
    tensor = {"name": "TEXT", "datatype": "BYTES", "shape": [1], "data": [TEXT]}
    oip = await client.post(
        "/v2/models/tiny-en/infer", json={"inputs": [tensor], "outputs": [{"name": "LOGITS"}]}
    )
    logits = dict(zip(["food", "sport", "tech"], oip.json()["outputs"][0]["data"], strict=True))
    assert {item["label"]: np.float32(item["score"]) for item in raw} == {
        k: np.float32(v) for k, v in logits.items()
    }


async def test_info_has_the_fields_tei_clients_read(client: httpx.AsyncClient) -> None:
    answer = await client.get("/info")
    assert answer.status_code == 200
    info = answer.json()
    assert info["model_id"] == "tiny-en"
    assert info["model_type"]["classifier"]["id2label"] == {"0": "food", "1": "sport", "2": "tech"}
    assert info["model_type"]["classifier"]["label2id"] == {"food": 0, "sport": 1, "tech": 2}
    for field in ("max_input_length", "max_client_batch_size", "max_batch_tokens", "max_concurrent_requests"):
        assert isinstance(info[field], int) and info[field] > 0
    assert info["auto_truncate"] is True and info["model_dtype"] == "float32"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"inputs": []},
        {"inputs": 3},
        {"inputs": [["a", "b"]]},
        {"inputs": [[]]},
        {"inputs": [None]},
        {"inputs": ""},
        {"inputs": "goal", "raw_scores": "yes"},
        {"inputs": "goal", "truncate": 1},
        {"inputs": ["goal"] * 257},
        {"inputs": "x" * 20_001},
    ],
)
async def test_bad_predict_requests_get_a_4xx(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    answer = await client.post("/predict", json=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()) >= {"error", "error_type"}
