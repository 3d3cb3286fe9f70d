"""ONNX export: native LSTM nodes, torch ≡ onnxruntime on padded mixed-length batches, refusal on mismatch."""

from __future__ import annotations

import random

import numpy as np
import onnx
import pytest
import torch

from service.bundle import PARITY_TOLERANCE, list_models, load_bundle
from training.export import graph as export
from training.loop.batches import pad
from training.model.classifier import LSTMClassifier, ModelConfig

OUTPUTS = ["logits", "hidden_states", "h_n", "c_n", "embedding_matrix"]


def _texts(count: int = 70, seed: int = 1) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(1, 40) for _ in range(rng.choice([1, 2, 5, 17, 33]))] for _ in range(count)]


@pytest.fixture(
    scope="module",
    params=[(2, True, "max"), (1, False, "last"), (1, True, "mean")],
    ids=["2-layer-bi-max", "uni-last", "bi-mean"],
)
def exported(request, tmp_path_factory):
    layers, bidirectional, pooling = request.param
    torch.manual_seed(3)
    config = ModelConfig(
        vocab_size=40,
        num_labels=3,
        embedding_dim=10,
        hidden_dim=7,
        num_layers=layers,
        bidirectional=bidirectional,
        pooling=pooling,
    )
    model = LSTMClassifier(config).eval()
    path = export.export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return model, path


def test_graph_has_named_io_and_one_native_lstm_node_per_layer(exported):
    model, path = exported
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["ids", "lengths"]
    assert [o.name for o in graph.output] == OUTPUTS
    assert sum(node.op_type == "LSTM" for node in graph.node) == model.config.num_layers
    assert not any(node.op_type in ("Loop", "Scan") for node in graph.node)
    dims = graph.input[0].type.tensor_type.shape.dim
    assert all(dim.dim_param for dim in dims)  # batch and sequence are dynamic


def test_parity_on_padded_mixed_length_batches(exported):
    model, path = exported
    report = export.check_parity(model, path, _texts(), batch_size=32)
    assert report["batches"] == 3 and report["texts"] == 70
    assert report["max_abs_logit_diff"] < 1e-5
    assert report["max_abs_hidden_states_diff"] < 1e-5
    assert report["argmax_agreement"] == 1.0


def test_onnx_text_alone_equals_text_in_padded_batch_and_padding_is_zero(exported):
    _, path = exported
    session = export.session(path)
    texts = _texts(8)
    ids, lengths = pad(texts)
    batched = session.run(OUTPUTS, {"ids": ids.numpy(), "lengths": lengths.numpy()})
    for row, text in enumerate(texts):
        one_ids, one_lengths = pad([text])
        alone = session.run(OUTPUTS, {"ids": one_ids.numpy(), "lengths": one_lengths.numpy()})
        np.testing.assert_allclose(batched[0][row], alone[0][0], atol=1e-5)
        assert np.all(batched[1][row, len(text) :] == 0)
    np.testing.assert_array_equal(batched[4], exported[0].embedding.weight.detach().numpy())


def test_parity_failure_refuses_the_bundle(exported, monkeypatch):
    model, path = exported
    with torch.no_grad():
        tampered = LSTMClassifier(model.config).eval()
        tampered.load_state_dict(model.state_dict())
        tampered.classifier.bias.add_(1e-3)  # torch now disagrees with the exported graph
    with pytest.raises(export.ExportError, match="refusing"):
        export.check_parity(tampered, path, _texts())


def test_trained_bundle_records_parity_and_torch_golden_logits(tiny_store):
    manifest = load_bundle(tiny_store / "tiny-zh" / "1").manifest
    assert manifest.parity.max_abs_logit_diff <= PARITY_TOLERANCE and manifest.parity.texts > 0
    lengths = [len(example.ids) for example in manifest.golden]
    assert len(set(lengths)) > 1  # mixed lengths
    assert manifest.training.command and manifest.libraries["torch"].startswith("2.13")


def test_int8_variant_is_the_next_version_with_its_own_golden_logits(tiny_bundle, tmp_path):
    tiny_bundle(tmp_path, "quant", language="zh", tokenizer="char", quantize=True, epochs=3)
    assert list_models(tmp_path) == {"quant": [1, 2]}
    fp32, int8 = load_bundle(tmp_path / "quant" / "1"), load_bundle(tmp_path / "quant" / "2")
    assert int8.manifest.variant == "int8"
    assert int8.manifest.quantized_from["version"] == 1
    assert int8.manifest.quantized_from["accuracy"] == fp32.manifest.metrics.accuracy
    # int8 against fp32: the same texts, the same winners, logits a bounded distance apart
    assert [item.ids for item in int8.manifest.golden] == [item.ids for item in fp32.manifest.golden]
    int8_logits = np.asarray([example.logits for example in int8.manifest.golden])
    fp32_logits = np.asarray([example.logits for example in fp32.manifest.golden])
    assert (int8_logits.argmax(1) == fp32_logits.argmax(1)).all()
    assert 0 < np.abs(int8_logits - fp32_logits).max() < 0.25
    assert int8.manifest.parity.argmax_agreement >= 0.9
    assert abs(int8.manifest.metrics.accuracy - fp32.manifest.metrics.accuracy) <= 0.1
    # and its golden logits are what its own graph gives each text alone (what the service checks)
    session = export.session(int8.model_path)
    for example in int8.manifest.golden:
        ids = np.array([example.ids], dtype=np.int64)
        (logits,) = session.run(["logits"], {"ids": ids, "lengths": np.array([ids.shape[1]], dtype=np.int64)})
        np.testing.assert_allclose(logits[0], example.logits, atol=1e-4)


def test_onnx_extra_padding_columns_change_nothing(exported):
    _, path = exported
    session = export.session(path)
    ids, lengths = pad(_texts(6))
    wider = np.concatenate([ids.numpy(), np.zeros((6, 9), dtype=np.int64)], axis=1)
    tight = session.run(OUTPUTS[:2], {"ids": ids.numpy(), "lengths": lengths.numpy()})
    wide = session.run(OUTPUTS[:2], {"ids": wider, "lengths": lengths.numpy()})
    np.testing.assert_allclose(wide[0], tight[0], atol=1e-6)
    assert wide[1].shape[1] == wider.shape[1] and np.all(wide[1][:, ids.shape[1] :] == 0)
