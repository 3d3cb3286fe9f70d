"""The committed int8 bundle (``tiny-en/2``: ``tiny-en/1`` after dynamic quantization) against its fp32
source, both served: the same labels within a small score difference, the same accuracy on the data they
were trained on. Dynamic quantization makes scores depend on the batch (``batch_invariant: false``), so the
int8 bundle is verified text by text, and /classify gives each text the scores it gets alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.data import read_csv
from support.stores import DATA, INT8, copy_store

from service.bundle import load_bundle
from service.settings import Settings

pytestmark = pytest.mark.anyio

TEXTS = [
    "the striker scored a goal",
    "soup",
    "a new phone with a fast chip",
    "the chef cooked pasta for the team",
]
ROWS = read_csv(DATA / "tiny-en.csv")
# Quantizing weights and activations to 8 bits moves a tiny model's scores by a few hundredths.
SCORE_TOLERANCE = 0.05
# A text whose fp32 top two scores are closer than this may legitimately swap labels under int8.
CLEAR_MARGIN = 0.1


@pytest.fixture
def int8_store(tmp_path: Path) -> Path:
    return copy_store(INT8, tmp_path / "int8")


async def _scores(client: httpx.AsyncClient, texts: list[str]) -> list[dict[str, float]]:
    scores = []
    for start in range(0, len(texts), 16):
        response = await client.post("/classify", json={"texts": texts[start : start + 16]})
        assert response.status_code == 200, response.text
        scores += [result["scores"] for result in response.json()["results"]]
    return scores


def _accuracy(scores: list[dict[str, float]]) -> float:
    hits = [
        max(score, key=score.__getitem__) == label for score, (_, label) in zip(scores, ROWS, strict=True)
    ]
    return sum(hits) / len(hits)


def test_the_int8_bundle_records_its_fp32_source(tiny_store: Path, int8_store: Path) -> None:
    int8, fp32 = load_bundle(int8_store / "tiny-en" / "2"), load_bundle(tiny_store / "tiny-en" / "1")

    assert (int8.manifest.variant, int8.manifest.batch_invariant) == ("int8", False)
    assert (fp32.manifest.variant, fp32.manifest.batch_invariant) == ("fp32", True)
    assert int8.manifest.quantized_from is not None and int8.manifest.quantized_from["version"] == 1
    assert int8.manifest.files["tokenizer.json"] == fp32.manifest.files["tokenizer.json"]
    assert int8.manifest.files["model.onnx"] != fp32.manifest.files["model.onnx"]


async def test_int8_scores_stay_close_to_fp32_with_the_same_labels_and_accuracy(
    tiny_store: Path, int8_store: Path, start_app: Callable[..., Any]
) -> None:
    texts = TEXTS + [text for text, _ in ROWS]
    async with start_app(Settings(model_store=tiny_store, workers=1)) as client:
        fp32 = await _scores(client, texts)
    async with start_app(Settings(model_store=int8_store, workers=1)) as client:
        int8 = await _scores(client, texts)

    differences = [abs(a[label] - b[label]) for a, b in zip(fp32, int8, strict=True) for label in a]
    assert 0 < max(differences) <= SCORE_TOLERANCE  # int8 really differs, and only a little
    for text, a, b in zip(texts, fp32, int8, strict=True):
        first, second = sorted(a.values(), reverse=True)[:2]
        if first - second > CLEAR_MARGIN:
            assert max(a, key=a.__getitem__) == max(b, key=b.__getitem__), text
    fp32_accuracy, int8_accuracy = _accuracy(fp32[len(TEXTS) :]), _accuracy(int8[len(TEXTS) :])
    assert fp32_accuracy >= 0.9
    assert abs(fp32_accuracy - int8_accuracy) <= 2 / len(ROWS)


async def test_int8_texts_score_as_alone(int8_store: Path, start_app: Callable[..., Any]) -> None:
    async with start_app(Settings(model_store=int8_store, workers=1)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        alone = {}
        for text in TEXTS:
            answer = await client.post("/classify", json={"text": text})
            assert answer.status_code == 200 and answer.json()["version"] == 2
            alone[text] = answer.json()["results"][0]["scores"]
        together = await asyncio.gather(*(client.post("/classify", json={"texts": TEXTS}) for _ in range(6)))

    for response in together:
        assert response.status_code == 200
        assert [result["scores"] for result in response.json()["results"]] == [alone[t] for t in TEXTS]
