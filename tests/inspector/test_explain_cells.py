"""/explain on the other cells and on a multi-label model, each trained from CSV by the training command
(a few seconds each): every attribution and trajectory point equals that sequence's score alone, and a
multi-label explanation is about the labels over their thresholds."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from support.data import tiny_examples, write_csv

from service.engine.loading import open_model
from service.settings import Settings
from service.tokenizer import UNK_ID

pytestmark = [pytest.mark.anyio, pytest.mark.train, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TINY = ["--embedding-dim", "16", "--hidden-dim", "16", "--max-length", "48", "--epochs", "6", "--batch-size"]
TINY += ["16", "--lr", "0.01", "--patience", "6", "--threads", "1", "--no-progress", "--split-seed", "0"]
TINY += ["--allow-weak"]  # tiny models: publishing below the floor is what these tests want


def _train(store: Path, runs: Path, name: str, data: Path, *options: str) -> None:
    command = [sys.executable, "-m", "training.cli", "train", "--data", str(data), "--name", name]
    command += ["--store", str(store), "--run-dir", str(runs / name), *TINY, *options]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="needs torch (the train extra)")
    from training.data.datasets.make_multilabel import generate, write

    folder = tmp_path_factory.mktemp("cells")
    store, runs = folder / "store", folder / "runs"
    topics = write_csv(folder / "topics.csv", tiny_examples("en"))
    tags = write(generate(360, seed=5), folder / "tags.csv")
    _train(store, runs, "tiny-gru", topics, "--cell", "gru", "--num-layers", "2")
    _train(store, runs, "tiny-rnn", topics, "--cell", "rnn", "--no-bidirectional")
    _train(store, runs, "tiny-tags", tags, "--label-column", "labels", "--cell", "gru")
    return store


@pytest.fixture(scope="module")
async def client(store: Path, in_process: object) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(Settings(model_store=store)) as client:  # type: ignore[operator]
        yield client


async def _explained_exactly(client: httpx.AsyncClient, store: Path, name: str, text: str) -> dict:
    response = await client.post("/explain", json={"model": name, "text": text, "trajectory": True})
    assert response.status_code == 200, response.text
    answer = response.json()
    runtime = open_model(store / name / "1")
    ids = [token["id"] for token in answer["tokens"]]
    base = runtime.classify([ids])[0]
    for label in answer["labels"]:
        column = runtime.labels.index(label)
        for index, token in enumerate(answer["tokens"]):
            occluded = runtime.classify([[*ids[:index], UNK_ID, *ids[index + 1 :]]])[0, column]
            assert token["attributions"][label] == pytest.approx(float(base[column] - occluded), abs=1e-6)
    for stop in range(1, len(ids) + 1):
        alone = runtime.classify([ids[:stop]])[0]
        got = [answer["trajectory"]["scores"][label][stop - 1] for label in runtime.labels]
        assert got == pytest.approx(alone.tolist(), abs=1e-6)
    return answer


@pytest.mark.parametrize("name", ["tiny-gru", "tiny-rnn"])
async def test_gru_and_rnn_models_explain_exactly(client: httpx.AsyncClient, store: Path, name: str) -> None:
    answer = await _explained_exactly(client, store, name, "the coach scored a goal in the new stadium")

    assert answer["labels"] == [answer["label"]] and answer["label"] == max(
        answer["scores"], key=answer["scores"].get
    )


async def test_a_multi_label_explanation_covers_every_label_over_its_threshold(
    client: httpx.AsyncClient, store: Path
) -> None:
    models = (await client.get("/models/tiny-tags")).json()
    assert models["task"] == "multi-label"
    runtime = open_model(store / "tiny-tags" / "1")
    texts = [
        "the coach saw the team score a goal and the doctor at the hospital gave a vaccine",
        "new laptop software for the robot and a band concert with a new album",
    ]
    found_several = False
    for text in texts:
        answer = await _explained_exactly(client, store, "tiny-tags", text)
        ids = [token["id"] for token in answer["tokens"]]
        decided = [runtime.labels[index] for index in runtime.decide(runtime.classify([ids]))[0]]
        assert answer["labels"] == (decided or [max(answer["scores"], key=answer["scores"].get)])
        assert set(answer["tokens"][0]["attributions"]) == set(answer["labels"])
        found_several = found_several or len(answer["labels"]) > 1
    assert found_several  # two topics' keywords: the model puts both labels over their thresholds
    chosen = await client.post(
        "/explain", json={"model": "tiny-tags", "text": texts[0], "label": runtime.labels[0]}
    )
    assert chosen.status_code == 200 and chosen.json()["labels"] == [runtime.labels[0]]
