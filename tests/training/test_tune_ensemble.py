"""``--ensemble 3``: three seeds' models in one ONNX graph that passes the parity gate, is served like any
bundle, and answers the mean of its members' probabilities."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
from support.apps import running_app
from support.data import tiny_examples, write_csv

from service.bundle import PARITY_TOLERANCE, load_bundle
from training.cli import main
from training.cli.pipeline import train_bundle
from training.data.source import DataSpec
from training.loop.batches import encode_texts
from training.loop.config import TokenizerSettings, TrainSettings
from training.loop.trainer import load_checkpoint_model, predict_logits
from training.model.classifier import ModelConfig

TEXTS = ["the chef made soup", "a goal in the match", "my laptop battery and the cloud server", "the"]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


async def _served(store: Path, path: str, body: dict) -> httpx.Response:
    from service.settings import Settings

    async with running_app(Settings(model_store=store)) as client:
        return await client.post(path, json=body)


def test_an_ensemble_of_three_is_served_and_answers_the_mean_of_its_members(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "tiny.csv", tiny_examples("en", per_label=20))
    result = train_bundle(
        DataSpec(data=str(data), seed=0),
        tmp_path / "store",
        "trio",
        tokenizer=TokenizerSettings(max_length=32, max_vocab=None),
        model=ModelConfig(embedding_dim=8, hidden_dim=8),
        training=TrainSettings(epochs=2, batch_size=16, learning_rate=1e-2),
        run_dir=tmp_path / "runs",
        baseline=False,
        calibrated=False,  # served scores are then the graph's probabilities, untouched
        seeds=(1, 2, 3),
        ensemble=True,
    )
    bundle = load_bundle(result.path)
    manifest = bundle.manifest
    assert manifest.training.extra["ensemble"]["seeds"] == [1, 2, 3]
    assert manifest.parity.max_abs_logit_diff <= PARITY_TOLERANCE
    assert manifest.parameters["ensemble_members"] == 3

    members = [load_checkpoint_model(tmp_path / "runs" / f"seed-{seed}").model for seed in (1, 2, 3)]
    sequences = encode_texts(bundle.tokenizer, TEXTS)
    expected = np.mean([_softmax(predict_logits(member, sequences)) for member in members], axis=0)
    single = _softmax(predict_logits(members[0], sequences))
    assert not np.allclose(expected, single, atol=1e-3)  # the members differ: the mean is not any one

    answer = asyncio.run(_served(tmp_path / "store", "/classify", {"model": "trio", "texts": TEXTS}))
    assert answer.status_code == 200, answer.text
    labels = bundle.labels
    served = np.array([[row["scores"][label] for label in labels] for row in answer.json()["results"]])
    np.testing.assert_allclose(served, expected, atol=1e-5)

    hidden = asyncio.run(_served(tmp_path / "store", "/hidden-states", {"model": "trio", "text": TEXTS[0]}))
    assert hidden.status_code == 200, hidden.text  # the first member's, as the manifest says
    explained = asyncio.run(_served(tmp_path / "store", "/explain", {"model": "trio", "text": TEXTS[0]}))
    assert explained.status_code == 200, explained.text  # occlusion on the ensemble's own scores


def test_an_ensemble_without_enough_seeds_or_with_int8_is_refused(tmp_path: Path, caplog) -> None:
    data = write_csv(tmp_path / "tiny.csv", tiny_examples("en", per_label=10))
    argv = ["train", "--data", str(data), "--name", "x", "--store", str(tmp_path / "store")]
    assert main([*argv, "--ensemble", "1"]) == 2
    assert "an ensemble averages 2 or more models" in caplog.text
    assert main([*argv, "--ensemble", "3", "--seeds", "1,2"]) == 2
    assert "--ensemble 3 with 2 --seeds: give as many seeds" in caplog.text
    assert main([*argv, "--ensemble", "2", "--quantize"]) == 2
    assert "--quantize does not apply to an ensemble" in caplog.text
    assert not (tmp_path / "store" / "x").exists()
