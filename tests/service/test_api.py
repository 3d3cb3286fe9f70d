"""In-process API tests with the real lifespan: every answer checked against its documented schema."""

from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel

from service.api.native.schemas import (
    ClassifyResponse,
    EmbedResponse,
    HiddenStatesResponse,
    LivenessResponse,
    ModelDetailResponse,
    ModelListResponse,
    ReadinessResponse,
    TokenizeResponse,
)

pytestmark = pytest.mark.anyio


def parsed(response: httpx.Response, schema: type[BaseModel]) -> BaseModel:
    """The answer, validated against the response model the OpenAPI document promises."""
    return schema.model_validate(response.json())


async def test_classify_one_text(client: httpx.AsyncClient) -> None:
    response = await client.post("/classify", json={"text": "the striker scored a goal for the team"})

    assert response.status_code == 200
    body = parsed(response, ClassifyResponse)
    assert isinstance(body, ClassifyResponse)
    assert (body.model, body.version) == ("tiny-en", 1)
    (result,) = body.results
    assert list(result.scores) == ["food", "sport", "tech"]
    assert result.label == "sport" and result.score == max(result.scores.values())
    assert sum(result.scores.values()) == pytest.approx(1.0)
    assert result.truncated is False


async def test_batch_and_single_classification_give_identical_scores(client: httpx.AsyncClient) -> None:
    texts = ["这个手机很棒，推荐", "差", "物流太慢了，真的失望，退货" * 3]

    batch = (await client.post("/classify", json={"texts": texts, "model": "tiny-zh"})).json()["results"]
    single = [
        (await client.post("/classify", json={"text": text, "model": "tiny-zh"})).json()["results"][0]
        for text in texts
    ]

    assert [result["scores"] for result in batch] == [result["scores"] for result in single]


async def test_classify_truncates_long_texts_by_default_and_says_so(client: httpx.AsyncClient) -> None:
    long_text = "goal " * 100  # tiny-en reads at most 64 tokens

    response = await client.post("/classify", json={"texts": [long_text, "soup"], "version": 1})

    assert response.status_code == 200
    assert [result["truncated"] for result in response.json()["results"]] == [True, False]


async def test_classify_refuses_long_texts_when_asked_not_to_truncate(client: httpx.AsyncClient) -> None:
    response = await client.post("/classify", json={"texts": ["soup", "goal " * 100], "truncate": False})

    assert response.status_code == 422
    assert response.json() == {
        "error": 'texts.1: 100 tokens, but model tiny-en reads at most 64; send "truncate": true to cut it',
        "error_type": "validation",
    }


async def test_tokenize_gives_offsets_into_the_original_text(client: httpx.AsyncClient) -> None:
    text = "The CHEF's soup, today!"

    response = await client.post("/tokenize", json={"text": text})

    assert response.status_code == 200
    (result,) = parsed(response, TokenizeResponse).results  # type: ignore[attr-defined]
    assert [token.text for token in result.tokens] == ["The", "CHEF's", "soup", ",", "today", "!"]
    assert all(text[token.start : token.stop] == token.text for token in result.tokens)
    assert [token.unk for token in result.tokens][2] is False and result.tokens[2].id > 1
    assert result.num_tokens == result.num_tokens_before_truncation == 6 and not result.truncated


async def test_tokenize_reports_truncation(client: httpx.AsyncClient) -> None:
    response = await client.post("/tokenize", json={"text": "data " * 70})

    result = response.json()["results"][0]
    assert (result["num_tokens"], result["num_tokens_before_truncation"], result["truncated"]) == (
        64,
        70,
        True,
    )


async def test_tokenize_accepts_whitespace_only_text(client: httpx.AsyncClient) -> None:
    response = await client.post("/tokenize", json={"text": " \t\n "})

    assert response.status_code == 200
    assert response.json()["results"][0]["tokens"] == []


async def test_embed_tokens_with_neighbors(client: httpx.AsyncClient) -> None:
    response = await client.post("/embed", json={"tokens": ["Goal", "zzzz"], "neighbors": 3})

    assert response.status_code == 200
    body = parsed(response, EmbedResponse)
    assert isinstance(body, EmbedResponse)
    (result,) = body.results
    goal, unknown = result.tokens
    assert (goal.text, goal.unk, unknown.id, unknown.unk) == ("Goal", False, 1, True)
    assert len(goal.vector) == body.embedding_dim
    assert goal.neighbors is not None and len(goal.neighbors) == 3
    assert all(neighbor.token not in ("<pad>", "goal") for neighbor in goal.neighbors)
    assert goal.start is None and not result.truncated


async def test_embed_a_text_gives_its_tokens_vectors(client: httpx.AsyncClient) -> None:
    response = await client.post("/embed", json={"texts": ["soup and bread", "goal"]})

    assert response.status_code == 200
    results = response.json()["results"]
    assert [[token["text"] for token in result["tokens"]] for result in results] == [
        ["soup", "and", "bread"],
        ["goal"],
    ]
    assert results[0]["tokens"][0]["neighbors"] is None and results[0]["tokens"][0]["start"] == 0
    same_token = (await client.post("/embed", json={"tokens": ["goal"]})).json()["results"][0]["tokens"][0]
    assert results[1]["tokens"][0]["vector"] == same_token["vector"]


async def test_hidden_states_give_a_state_per_token_and_the_final_states(client: httpx.AsyncClient) -> None:
    response = await client.post("/hidden-states", json={"texts": ["goal team win", "soup"]})

    assert response.status_code == 200
    body = parsed(response, HiddenStatesResponse)
    assert isinstance(body, HiddenStatesResponse)
    width = body.hidden_dim * body.directions
    for result, expected_tokens in zip(body.results, (3, 1), strict=True):
        assert len(result.tokens) == len(result.hidden_states) == expected_tokens
        assert all(len(row) == width for row in result.hidden_states)
        assert len(result.h_n) == len(result.c_n) == body.num_layers * body.directions
        assert all(len(row) == body.hidden_dim for row in result.h_n)
    # The forward direction's last output is its final hidden state.
    last_forward = body.results[0].hidden_states[-1][: body.hidden_dim]
    assert last_forward == pytest.approx(body.results[0].h_n[-body.directions], abs=1e-6)


async def test_models_lists_every_model(client: httpx.AsyncClient) -> None:
    response = await client.get("/models")

    assert response.status_code == 200
    body = parsed(response, ModelListResponse)
    assert isinstance(body, ModelListResponse)
    assert body.default_model == "tiny-en"
    assert [(model.name, model.state.value, model.default) for model in body.models] == [
        ("tiny-en", "ready", True),
        ("tiny-zh", "ready", False),
    ]
    assert body.models[1].labels == ["neg", "pos"]


async def test_model_detail_describes_without_the_vocabulary(client: httpx.AsyncClient) -> None:
    response = await client.get("/models/tiny-zh")

    assert response.status_code == 200
    body = parsed(response, ModelDetailResponse)
    assert isinstance(body, ModelDetailResponse)
    assert body.tokenizer is not None and body.tokenizer.mode == "char" and body.tokenizer.vocab_size > 2
    assert body.dimensions is not None and body.dimensions["embedding_dim"] == 8
    assert body.parameters is not None and body.parameters["total"] > 0
    assert body.checksums is not None and set(body.checksums) == {
        "model.onnx",
        "tokenizer.json",
        "labels.json",
    }
    assert body.versions == [1] and body.metrics is not None
    assert "vocabulary" not in response.json()["tokenizer"] and "golden" not in response.json()


async def test_health_routes(client: httpx.AsyncClient) -> None:
    live, ready, health = [await client.get(path) for path in ("/livez", "/readyz", "/health")]

    assert (live.status_code, ready.status_code, health.status_code) == (200, 200, 200)
    assert parsed(live, LivenessResponse) == LivenessResponse(status="alive")
    readiness = parsed(ready, ReadinessResponse)
    assert isinstance(readiness, ReadinessResponse) and readiness.status == "ready"
    assert set(readiness.models) == {"tiny-en", "tiny-zh"}
    assert health.json() == ready.json()


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/livez", headers={"X-Request-ID": "trace-42"})
    generated = await client.post("/classify", json={"text": "x", "model": "ghost"})
    unsafe = await client.get("/livez", headers={"X-Request-ID": "a b\tc"})

    assert echoed.headers["x-request-id"] == "trace-42"
    assert len(generated.headers["x-request-id"]) == 32
    assert unsafe.headers["x-request-id"] != "a b\tc"


async def test_openapi_documents_every_route_and_docs_are_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    docs = await client.get("/docs")

    assert docs.status_code == 200
    assert {
        "/classify",
        "/tokenize",
        "/embed",
        "/hidden-states",
        "/models",
        "/models/{name}",
        "/livez",
        "/readyz",
        "/health",
    } <= set(spec["paths"])
    classify = spec["paths"]["/classify"]["post"]
    assert classify["summary"] and classify["description"]
    assert set(classify["responses"]) >= {"200", "404", "413", "422", "503"}
