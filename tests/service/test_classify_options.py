"""/classify's options (top_k, raw_scores, abstain_below) on the committed tiny bundle, and its answers for
a multi-label model and a calibrated one (trained here in seconds): the real app and lifespan, over HTTP."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.apps import running_app

from service.api.native.schemas import ClassifyResponse, HiddenStatesResponse, ModelDetailResponse
from service.settings import Settings

pytestmark = pytest.mark.anyio

TEXT = "the striker scored a goal for the team"


async def test_top_k_returns_the_k_best_labels_best_first(client: httpx.AsyncClient) -> None:
    every = (await client.post("/classify", json={"text": TEXT})).json()["results"][0]
    answer = await client.post("/classify", json={"text": TEXT, "top_k": 2})

    assert answer.status_code == 200
    result = ClassifyResponse.model_validate(answer.json()).results[0]
    best_two = sorted(every["scores"].items(), key=lambda item: -item[1])[:2]
    assert list(result.scores.items()) == best_two
    assert result.label == every["label"] and "labels" not in answer.json()["results"][0]


async def test_raw_scores_add_the_logits_behind_the_probabilities(client: httpx.AsyncClient) -> None:
    result = (await client.post("/classify", json={"text": TEXT, "raw_scores": True})).json()["results"][0]
    calibration = (await client.get("/models/tiny-en")).json()["calibration"]

    # the probabilities are softmax(logits / T), T the model's calibration temperature (1 without one)
    temperature = calibration["temperature"] if calibration else 1.0
    logits = np.array(list(result["logits"].values()), dtype=np.float64) / temperature
    assert list(result["logits"]) == list(result["scores"])
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(list(result["scores"].values()), expected, rtol=1e-5)
    assert "logits" not in (await client.post("/classify", json={"text": TEXT})).json()["results"][0]


async def test_abstain_below_gives_a_null_label_with_the_scores(client: httpx.AsyncClient) -> None:
    texts = [TEXT, "the a of"]
    plain = (await client.post("/classify", json={"texts": texts})).json()["results"]
    cut = max(result["score"] for result in plain) - 1e-6
    answer = (await client.post("/classify", json={"texts": texts, "abstain_below": cut})).json()["results"]

    for before, after in zip(plain, answer, strict=True):
        assert after["scores"] == before["scores"] and after["score"] == before["score"]
        assert after["label"] == (before["label"] if before["score"] >= cut else None)
    assert any(result["label"] is None for result in answer)


@pytest.mark.parametrize(
    "options",
    [{"top_k": 0}, {"top_k": "two"}, {"abstain_below": 0}, {"abstain_below": 1.5}, {"raw_scores": "yes"}],
)
async def test_bad_options_get_a_422_with_the_standard_body(client: httpx.AsyncClient, options) -> None:
    answer = await client.post("/classify", json={"text": TEXT, **options})

    assert answer.status_code == 422
    assert set(answer.json()) >= {"error", "error_type"}


# -- a multi-label model and a calibrated single-label model, trained for these tests -----------------


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from support.training import train_tiny

    from training.cli.pipeline import train_bundle
    from training.data.datasets.make_multilabel import generate, write
    from training.data.source import DataSpec
    from training.loop.config import TokenizerSettings, TrainSettings
    from training.model.classifier import ModelConfig

    folder = tmp_path_factory.mktemp("options")
    store = folder / "store"
    tags = write(generate(360, seed=5), folder / "tags.csv")
    train_bundle(
        DataSpec(data=str(tags), label_column="labels", seed=0),
        store,
        "tags",
        tokenizer=TokenizerSettings(max_length=32, max_vocab=None),
        model=ModelConfig(cell="gru", embedding_dim=16, hidden_dim=16),
        training=TrainSettings(epochs=12, batch_size=16, learning_rate=1e-2, patience=12, seed=0),
        baseline=False,
    )
    train_tiny(store, "calibrated", data_folder=folder, epochs=4)
    return store


@pytest.fixture(scope="module")
async def trained(trained_store: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(Settings(model_store=trained_store, default_model="tags")) as client:
        yield client


async def test_multi_label_answer_scores_every_label_and_lists_those_over_threshold(
    trained: httpx.AsyncClient,
) -> None:
    detail = ModelDetailResponse.model_validate((await trained.get("/models/tags")).json())
    assert detail.task == "multi-label" and detail.calibration is None
    thresholds = detail.thresholds
    assert thresholds is not None and set(thresholds) == set(detail.labels or [])

    texts = ["the coach and the team won the match", "night morning the day", "a new album by the band"]
    answer = await trained.post("/classify", json={"model": "tags", "texts": texts, "raw_scores": True})
    assert answer.status_code == 200
    results = ClassifyResponse.model_validate(answer.json()).results
    for result in results:
        assert set(result.scores) == set(thresholds)
        over = [label for label, score in result.scores.items() if score >= thresholds[label]]
        assert result.labels == sorted(over, key=lambda label: -result.scores[label])
        assert result.label == (result.labels[0] if result.labels else None)
        for label, logit in (result.logits or {}).items():
            assert result.scores[label] == pytest.approx(1 / (1 + math.exp(-logit)), rel=1e-5)
    assert "sports" in (results[0].labels or []) and "music" in (results[2].labels or [])

    refused = await trained.post("/classify", json={"model": "tags", "text": texts[0], "abstain_below": 0.5})
    assert refused.status_code == 422 and "multi-label" in refused.json()["error"]


async def test_a_gru_models_hidden_states_say_it_has_no_cell_state(trained: httpx.AsyncClient) -> None:
    answer = await trained.post("/hidden-states", json={"model": "tags", "text": "goal match"})
    body = HiddenStatesResponse.model_validate(answer.json())
    assert body.cell == "gru" and body.results[0].c_n is None and len(body.results[0].h_n) == 2


async def test_calibrated_probabilities_use_the_manifests_temperature(trained: httpx.AsyncClient) -> None:
    detail = (await trained.get("/models/calibrated")).json()
    temperature = detail["calibration"]["temperature"]
    assert detail["task"] == "single-label" and detail["thresholds"] is None
    assert {"ece_before", "ece_after"} <= set(detail["calibration"])
    result = (
        await trained.post("/classify", json={"model": "calibrated", "text": TEXT, "raw_scores": True})
    ).json()["results"][0]
    logits = np.array(list(result["logits"].values()), dtype=np.float64) / temperature
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(list(result["scores"].values()), expected, rtol=1e-5)
