"""The ``tiny_store`` fixture yields real, verified bundles that onnxruntime reproduces."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from service.bundle import PARITY_TOLERANCE, list_models, load_bundle


def test_tiny_store_holds_two_verified_bundles(tiny_store):
    assert list_models(tiny_store) == {"tiny-en": [1], "tiny-zh": [1]}
    en, zh = load_bundle(tiny_store / "tiny-en" / "1"), load_bundle(tiny_store / "tiny-zh" / "1")
    assert (en.tokenizer.mode, len(en.labels)) == ("word", 3)
    assert (zh.tokenizer.mode, len(zh.labels)) == ("char", 2)
    for bundle in (en, zh):
        manifest = bundle.manifest
        assert manifest.parity.max_abs_logit_diff < PARITY_TOLERANCE
        assert manifest.parity.tolerance == PARITY_TOLERANCE
        assert 5 <= len(manifest.golden) <= 8
        assert manifest.metrics.baseline["model"] == "tfidf+logistic-regression"
        assert manifest.model["embedding_dim"] == 8
        assert (manifest.variant, manifest.batch_invariant) == ("fp32", True)


def test_golden_examples_replay_through_onnxruntime(tiny_store):
    for name in ("tiny-en", "tiny-zh"):
        bundle = load_bundle(tiny_store / name / "1")
        session = ort.InferenceSession(str(bundle.model_path), providers=["CPUExecutionProvider"])
        for example in bundle.manifest.golden:
            assert tuple(bundle.tokenizer.encode(example.text).ids) == example.ids
            ids = np.array([example.ids], dtype=np.int64)
            (logits,) = session.run(
                ["logits"], {"ids": ids, "lengths": np.array([ids.shape[1]], dtype=np.int64)}
            )
            np.testing.assert_allclose(logits[0], example.logits, atol=1e-5)


def test_tiny_models_learned_their_data(tiny_store):
    for name in ("tiny-en", "tiny-zh"):
        bundle = load_bundle(tiny_store / name / "1")
        assert bundle.manifest.metrics.accuracy >= 1.5 / len(bundle.labels)  # half as much again as chance
