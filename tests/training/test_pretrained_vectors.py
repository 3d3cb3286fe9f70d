"""word2vec into the embedding: text and binary files, coverage, frozen vs fine-tuned, trained on a split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors

from training.model import pretrained
from training.model.classifier import LSTMClassifier, ModelConfig

VOCABULARY = ["<pad>", "<unk>", "goal", "soup", "Chip", "unseen"]


@pytest.fixture
def vectors_file(tmp_path):
    vectors = KeyedVectors(vector_size=4)
    vectors.add_vectors(["goal", "soup", "chip"], np.arange(12, dtype=np.float32).reshape(3, 4))
    vectors.save_word2vec_format(str(tmp_path / "v.txt"), binary=False)
    vectors.save_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    return tmp_path


@pytest.mark.parametrize("name", ["v.txt", "v.bin"])
def test_text_and_binary_vectors_fill_the_embedding_and_report_coverage(vectors_file, name):
    model = LSTMClassifier(
        ModelConfig(vocab_size=len(VOCABULARY), num_labels=2, embedding_dim=4, hidden_dim=3)
    )
    report = pretrained.apply_vectors(
        model.embedding, VOCABULARY, pretrained.load_vectors(vectors_file / name)
    )
    weight = model.embedding.weight.detach().numpy()
    assert report["covered"] == 3 and report["coverage"] == 0.75  # "Chip" found lower-cased
    np.testing.assert_array_equal(weight[2], [0, 1, 2, 3])
    np.testing.assert_array_equal(weight[4], [8, 9, 10, 11])
    assert np.all(weight[0] == 0)
    assert model.embedding.weight.requires_grad


def test_frozen_embedding_does_not_change_in_training(vectors_file):
    model = LSTMClassifier(
        ModelConfig(vocab_size=len(VOCABULARY), num_labels=2, embedding_dim=4, hidden_dim=3)
    )
    pretrained.apply_vectors(
        model.embedding, VOCABULARY, pretrained.load_vectors(vectors_file / "v.txt"), "frozen"
    )
    before = model.embedding.weight.detach().clone()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.tensor([[2, 3, 4]]), torch.tensor([3]))[0].sum().backward()
    optimizer.step()
    torch.testing.assert_close(model.embedding.weight, before)


def test_dimension_mismatch_says_which_embedding_dim_to_use(vectors_file):
    model = LSTMClassifier(
        ModelConfig(vocab_size=len(VOCABULARY), num_labels=2, embedding_dim=5, hidden_dim=3)
    )
    with pytest.raises(ValueError, match="--embedding-dim 4"):
        pretrained.apply_vectors(model.embedding, VOCABULARY, pretrained.load_vectors(vectors_file / "v.txt"))


def test_word2vec_trained_on_the_split_is_seeded():
    sentences = [["goal", "match", "team"], ["soup", "bread", "chef"]] * 20
    first = pretrained.train_vectors(sentences, dim=6, seed=3, epochs=2)
    again = pretrained.train_vectors(sentences, dim=6, seed=3, epochs=2)
    np.testing.assert_array_equal(first["goal"], again["goal"])
