"""The parity gate looks at every batch: a graph that disagrees with torch on the texts of one batch only
(one token's vector, met in that batch alone) is refused, wherever that batch is."""

from __future__ import annotations

import random

import pytest
import torch

from training.export import graph as export
from training.model.classifier import LSTMClassifier, ModelConfig

RARE = 39  # the one token whose vector the tampered model changes


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(5)
    config = ModelConfig(vocab_size=40, num_labels=3, embedding_dim=10, hidden_dim=7, bidirectional=True)
    model = LSTMClassifier(config).eval()
    return model, export.export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx")


def _texts_with_rare_token_in_batch(batch: int, batches: int = 3, batch_size: int = 32) -> list[list[int]]:
    rng = random.Random(batch)
    texts = [
        [rng.randrange(1, RARE) for _ in range(rng.choice([1, 3, 9, 21]))]
        for _ in range(batches * batch_size)
    ]
    texts[batch * batch_size + 7].append(RARE)  # the rare token, in this batch only
    return texts


def _one_vector_changed(model: LSTMClassifier) -> LSTMClassifier:
    tampered = LSTMClassifier(model.config).eval()
    tampered.load_state_dict(model.state_dict())
    with torch.no_grad():
        tampered.embedding.weight[RARE] += 0.5  # torch now disagrees with the graph on texts holding it
    return tampered


@pytest.mark.parametrize("batch", [0, 1, 2], ids=["first", "middle", "last"])
def test_a_mismatch_in_one_batch_of_several_is_refused(exported, batch: int) -> None:
    model, path = exported
    texts = _texts_with_rare_token_in_batch(batch)
    assert export.check_parity(model, path, texts, batch_size=32)["batches"] == 3  # untampered: passes
    with pytest.raises(export.ExportError, match="logits differ by .* refusing to write the bundle"):
        export.check_parity(_one_vector_changed(model), path, texts, batch_size=32)
