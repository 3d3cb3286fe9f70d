"""The engine serves what training now writes: GRU/RNN graphs without c_n, multi-label models scored with
one sigmoid per label and decided by their thresholds, and calibrated single-label models whose
probabilities are softmax(logits / T). Real bundles, trained in seconds, run through onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.stores import rewrite_manifest

from service.bundle import BundleError, load_bundle
from service.engine.runtime import ModelRuntime, sigmoid, softmax

pytestmark = pytest.mark.train

IDS = [[2, 3, 4], [5, 6]]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    from support.training import train_tiny

    from training.config import TokenizerSettings, TrainSettings
    from training.data import DataSpec
    from training.datasets.make_multilabel import generate, write
    from training.model import ModelConfig
    from training.pipeline import train_bundle

    folder = tmp_path_factory.mktemp("tasks")
    store = folder / "store"
    train_tiny(store, "tiny-gru", data_folder=folder, cell="gru", epochs=3)
    train_tiny(store, "tiny-lstm", data_folder=folder, epochs=3)  # calibrated by default
    tags = write(generate(240, seed=1), folder / "tags.csv")
    train_bundle(
        DataSpec(data=str(tags), label_column="labels", seed=0),
        store,
        "tiny-tags",
        tokenizer=TokenizerSettings(max_length=32, max_vocab=None),
        model=ModelConfig(cell="rnn", embedding_dim=8, hidden_dim=8, bidirectional=False),
        training=TrainSettings(epochs=3, batch_size=16, learning_rate=1e-2, seed=0),
        baseline=False,
    )
    return store


def test_a_gru_graph_has_no_c_n_and_the_runtime_says_so(store: Path) -> None:
    runtime = ModelRuntime.open(load_bundle(store / "tiny-gru" / "1"))
    assert runtime.cell == "gru" and not runtime.has_cell_state
    states = runtime.hidden_states(IDS)
    assert states.c_n is None and states.h_n.shape == (2, 2, 16)
    assert [item.shape for item in states.per_text] == [(3, 32), (2, 32)]


def test_multi_label_scores_are_sigmoids_decided_by_each_labels_threshold(store: Path) -> None:
    runtime = ModelRuntime.open(load_bundle(store / "tiny-tags" / "1"))
    assert runtime.task == "multi-label" and runtime.cell == "rnn"
    logits = runtime.logits(IDS)
    scores = runtime.classify(IDS)
    np.testing.assert_allclose(scores, sigmoid(logits))
    thresholds = runtime.manifest.thresholds
    for row, decided in zip(scores, runtime.decide(scores), strict=True):
        expected = [i for i, label in enumerate(runtime.labels) if row[i] >= thresholds[label]]
        assert sorted(decided) == expected
        assert decided == sorted(decided, key=lambda index: -row[index])


def test_a_multi_label_bundle_without_a_labels_threshold_is_refused(store: Path, tmp_path: Path) -> None:
    import shutil

    bundle = Path(shutil.copytree(store / "tiny-tags" / "1", tmp_path / "tiny-tags" / "1"))
    rewrite_manifest(bundle, lambda manifest: manifest["thresholds"].pop("sports"))
    with pytest.raises(BundleError, match=r"no threshold for the labels \['sports'\]"):
        ModelRuntime.open(load_bundle(bundle))
    rewrite_manifest(bundle, lambda manifest: manifest["thresholds"].update(sports=1.0))
    with pytest.raises(BundleError, match=r"strictly in \(0, 1\)"):
        load_bundle(bundle)


def test_calibrated_probabilities_are_the_softmax_of_the_logits_over_the_temperature(store: Path) -> None:
    runtime = ModelRuntime.open(load_bundle(store / "tiny-lstm" / "1"))
    temperature = runtime.manifest.calibration["temperature"]
    assert temperature > 0 and temperature != 1.0 and runtime.has_cell_state
    logits = runtime.logits(IDS)
    np.testing.assert_allclose(runtime.classify(IDS), softmax(logits / temperature))
    assert (runtime.classify(IDS).argmax(1) == logits.argmax(1)).all()
    assert runtime.hidden_states(IDS).c_n.shape == (2, 2, 16)
