"""The engine serves what training now writes: GRU/RNN graphs without c_n, multi-label models scored with
one sigmoid per label and decided by their thresholds, and calibrated single-label models whose
probabilities are softmax(logits / T). Real bundles (the committed fixtures), run through onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.stores import SHAPES, STORE, copy_store, rewrite_manifest

from service.bundle import BundleError, load_bundle
from service.engine.runtime import ModelRuntime, sigmoid, softmax

IDS = [[2, 3, 4], [5, 6]]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed fixtures: ``tiny-gru`` (GRU), ``tiny-tags`` (multi-label RNN) and ``tiny-en``
    (a calibrated LSTM), embedding 8 and hidden 8 each."""
    store = tmp_path_factory.mktemp("tasks") / "store"
    for name in ("tiny-gru", "tiny-tags"):
        copy_store(SHAPES / name, store / name)
    copy_store(STORE / "tiny-en", store / "tiny-en")
    return store


def test_a_gru_graph_has_no_c_n_and_the_runtime_says_so(store: Path) -> None:
    runtime = ModelRuntime.open(load_bundle(store / "tiny-gru" / "1"))
    assert runtime.cell == "gru" and not runtime.has_cell_state
    states = runtime.hidden_states(IDS)
    assert states.c_n is None and states.h_n.shape == (2, 2, 8)
    assert [item.shape for item in states.per_text] == [(3, 16), (2, 16)]


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
    runtime = ModelRuntime.open(load_bundle(store / "tiny-en" / "1"))
    temperature = runtime.manifest.calibration["temperature"]
    assert temperature > 0 and temperature != 1.0 and runtime.has_cell_state
    logits = runtime.logits(IDS)
    np.testing.assert_allclose(runtime.classify(IDS), softmax(logits / temperature))
    assert (runtime.classify(IDS).argmax(1) == logits.argmax(1)).all()
    assert runtime.hidden_states(IDS).c_n.shape == (2, 2, 8)
