"""An int8 bundle (dynamic quantization: scores depend on the batch, ``batch_invariant: false``) is verified
text by text, becomes ready, and /classify gives each text the scores it gets alone, however it is sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from service.settings import Settings

pytestmark = pytest.mark.anyio

TEXTS = [
    "the striker scored a goal",
    "soup",
    "a new phone with a fast chip",
    "the chef cooked pasta for the team",
]


async def test_int8_texts_score_as_alone(tmp_path: Path, tiny_bundle, start_app) -> None:
    store = tmp_path / "store"
    tiny_bundle(store, "tiny-int8", language="en", tokenizer="word", quantize=True)
    versions = sorted(int(p.name) for p in (store / "tiny-int8").iterdir() if p.name.isdigit())
    manifest = json.loads((store / "tiny-int8" / str(versions[-1]) / "manifest.json").read_text())
    assert manifest.get("variant") == "int8" and manifest.get("batch_invariant") is False

    async with start_app(Settings(model_store=store, workers=1)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        alone = {}
        for text in TEXTS:
            answer = await client.post("/classify", json={"text": text})
            assert answer.status_code == 200 and answer.json()["version"] == versions[-1]
            alone[text] = answer.json()["results"][0]["scores"]
        together = await asyncio.gather(*(client.post("/classify", json={"texts": TEXTS}) for _ in range(6)))

    for response in together:
        assert response.status_code == 200
        assert [result["scores"] for result in response.json()["results"]] == [alone[t] for t in TEXTS]
