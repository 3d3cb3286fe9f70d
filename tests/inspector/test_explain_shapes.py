"""/explain on every bundle shape the committed fixtures hold (word and char and char-bigram tokens, one and
two layers, one and two directions, max/mean/last pooling, an int8 graph that runs text by text): each
attribution and each trajectory point equals the engine's score of that one sequence run alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.bundle import load_bundle, write_bundle
from service.engine.loading import open_model
from service.settings import Settings
from service.tokenizer import UNK_ID

pytestmark = [pytest.mark.anyio, pytest.mark.api]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BUNDLES = {
    "tiny-en": FIXTURES / "store" / "tiny-en" / "1",
    "tiny-zh": FIXTURES / "store" / "tiny-zh" / "1",
    "tiny-deep": FIXTURES / "shapes" / "tiny-deep" / "1",
    "tiny-bigram": FIXTURES / "shapes" / "tiny-bigram" / "1",
    "tiny-int8": FIXTURES / "int8" / "tiny-en" / "2",
}
TEXTS = {
    "tiny-en": "the new striker was really tasty with soup and a chip",
    "tiny-zh": "质量真的差，退货了，不过物流快",
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All the shapes in one store (the int8 graph renamed, so that it is a model of its own)."""
    root = tmp_path_factory.mktemp("shapes") / "store"
    for name, folder in BUNDLES.items():
        if name == "tiny-int8":  # its manifest says tiny-en/2: written anew under its own name
            bundle = load_bundle(folder)
            write_bundle(
                root, name, folder / "model.onnx", bundle.tokenizer, bundle.labels, bundle.manifest, 2
            )
        else:
            shutil.copytree(folder, root / name / folder.name)
    return root


@pytest.fixture(scope="module")
async def client(store: Path, in_process: object):  # type: ignore[no-untyped-def]
    async with in_process(Settings(model_store=store)) as client:  # type: ignore[operator]
        yield client


@pytest.mark.parametrize("name", list(BUNDLES))
async def test_every_shape_explains_exactly(client: httpx.AsyncClient, store: Path, name: str) -> None:
    text = TEXTS["tiny-zh" if name in ("tiny-zh", "tiny-bigram") else "tiny-en"]
    response = await client.post("/explain", json={"model": name, "text": text, "trajectory": True})
    assert response.status_code == 200, response.text
    answer = response.json()
    runtime = open_model(next((store / name).iterdir()))
    ids = [token["id"] for token in answer["tokens"]]
    label = runtime.labels.index(answer["label"])

    alone = np.concatenate([runtime.classify([sequence]) for sequence in [ids]])
    assert answer["score"] == pytest.approx(float(alone[0, label]), abs=1e-6)
    for index, token in enumerate(answer["tokens"]):
        occluded = runtime.classify([[*ids[:index], UNK_ID, *ids[index + 1 :]]])[0, label]
        assert token["attribution"] == pytest.approx(float(alone[0, label] - occluded), abs=1e-6)
    for stop in range(1, len(ids) + 1):
        prefix = runtime.classify([ids[:stop]])[0]
        got = [answer["trajectory"]["scores"][label_name][stop - 1] for label_name in runtime.labels]
        assert got == pytest.approx(prefix.tolist(), abs=1e-6)
    assert any(token["attribution"] != 0 for token in answer["tokens"])
