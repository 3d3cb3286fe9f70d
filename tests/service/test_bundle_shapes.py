"""Every committed fixture bundle served over HTTP in process: 2 stacked layers with one direction and
last-state pooling, char bigrams with mean pooling, a GRU, a one-direction multi-label RNN, word and char
BiLSTMs with max pooling. Each answers
every route in the shape its architecture implies, and /classify reproduces the absolute scores of the
manifest's golden examples (softmax of the logits recorded at export over the calibration temperature, or
each label's sigmoid for the multi-label model)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.stores import STORE, copy_store

from service.bundle import PARITY_TOLERANCE, list_models, load_bundle
from service.settings import Settings

pytestmark = pytest.mark.anyio

# (model, clear text, its label or None for multi-label, tokenizer mode, cell, layers, directions)
SHAPES = [
    ("tiny-deep", "the striker scored a goal for the team", "sport", "word", "lstm", 2, 1),
    ("tiny-bigram", "真的很失望，垃圾，退货", "neg", "char-bigram", "lstm", 1, 2),
    ("tiny-gru", "a new laptop chip and a faster server network", "tech", "word", "gru", 1, 2),
    ("tiny-tags", "the coach and the team won the league match", None, "word", "rnn", 1, 1),
    ("tiny-en", "the chef made soup and bread", "food", "word", "lstm", 1, 2),
    ("tiny-zh", "非常喜欢，推荐", "pos", "char", "lstm", 1, 2),
]


@pytest.fixture(scope="module")
def every_fixture_store(shapes_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shapes store plus the two models of the tiny store, in one store."""
    store = copy_store(shapes_store, tmp_path_factory.mktemp("every") / "store")
    for name in list_models(STORE):
        copy_store(STORE / name, store / name)
    return store


@pytest.fixture(scope="module")
async def shapes_client(
    every_fixture_store: Path, start_app: Callable[..., Any]
) -> AsyncIterator[httpx.AsyncClient]:
    async with start_app(Settings(model_store=every_fixture_store, default_model="tiny-en")) as client:
        yield client


@pytest.mark.parametrize(("model", "text", "label", "mode", "cell", "layers", "directions"), SHAPES)
async def test_each_shape_answers_every_route(
    shapes_client: httpx.AsyncClient,
    every_fixture_store: Path,
    model: str,
    text: str,
    label: str | None,
    mode: str,
    cell: str,
    layers: int,
    directions: int,
) -> None:
    detail = (await shapes_client.get(f"/models/{model}")).json()
    assert detail["state"] == "ready" and detail["tokenizer"]["mode"] == mode
    hidden = detail["dimensions"]["hidden_dim"]

    classified = await shapes_client.post("/classify", json={"text": text, "model": model})
    assert classified.status_code == 200
    result = classified.json()["results"][0]
    if (
        label is None
    ):  # multi-label: one sigmoid per label; the labels at or over their thresholds, best first
        scores, thresholds = (
            result["scores"],
            load_bundle(every_fixture_store / model / "1").manifest.thresholds,
        )
        assert all(0 < score < 1 for score in scores.values())
        decided = sorted(
            (name for name in scores if scores[name] >= thresholds[name]), key=lambda n: -scores[n]
        )
        assert result["labels"] == decided and result["label"] == (decided[0] if decided else None)
    else:
        assert result["label"] == label and math.isclose(sum(result["scores"].values()), 1, rel_tol=1e-5)

    tokens = (await shapes_client.post("/tokenize", json={"text": text, "model": model})).json()
    count = tokens["results"][0]["num_tokens"]
    if mode == "char-bigram":  # overlapping pairs of characters
        assert all(len(token["text"]) == 2 for token in tokens["results"][0]["tokens"])

    states = await shapes_client.post("/hidden-states", json={"text": text, "model": model})
    assert states.status_code == 200
    body = states.json()
    assert (body["num_layers"], body["directions"], body["hidden_dim"]) == (layers, directions, hidden)
    states_result = body["results"][0]
    assert len(states_result["hidden_states"]) == count
    assert {len(row) for row in states_result["hidden_states"]} == {hidden * directions}
    assert len(states_result["h_n"]) == layers * directions
    if cell == "lstm":
        assert len(states_result["c_n"]) == layers * directions
    else:  # a GRU or a plain RNN has no cell state
        assert states_result["c_n"] is None

    embedded = await shapes_client.post("/embed", json={"text": text, "model": model, "neighbors": 2})
    assert embedded.status_code == 200


@pytest.mark.parametrize("model", [shape[0] for shape in SHAPES])
async def test_scores_match_the_golden_logits_recorded_at_export(
    shapes_client: httpx.AsyncClient, every_fixture_store: Path, model: str
) -> None:
    manifest = load_bundle(every_fixture_store / model / "1").manifest
    assert manifest.golden, "a bundle without golden examples proves nothing here"
    texts = [example.text for example in manifest.golden]
    # Single-label: softmax(logits / T), T the calibration temperature fitted at training. Multi-label:
    # each label's sigmoid.
    temperature = float(manifest.calibration["temperature"]) if manifest.calibration else 1.0
    multi_label = manifest.task == "multi-label"

    answer = await shapes_client.post("/classify", json={"texts": texts, "model": model})

    assert answer.status_code == 200
    for example, result in zip(manifest.golden, answer.json()["results"], strict=True):
        scores = list(result["scores"].values())  # in label order, as the logits
        expected = (
            [1 / (1 + math.exp(-logit)) for logit in example.logits]
            if multi_label
            else _softmax([logit / temperature for logit in example.logits])
        )
        assert max(abs(a - b) for a, b in zip(scores, expected, strict=True)) <= PARITY_TOLERANCE, (
            example.text
        )


def _softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exponentials = [math.exp(value - top) for value in logits]
    return [value / sum(exponentials) for value in exponentials]
