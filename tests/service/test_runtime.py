"""Unit level: padding, softmax, the loaded runtime, and golden verification refusing a wrong bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.bundle import BundleError, load_bundle
from service.engine.loading import open_model
from service.engine.runtime import ModelRuntime, pad_batch, softmax
from service.engine.verification import verify_golden
from service.tokenizer import PAD_ID


@pytest.fixture(scope="module")
def runtime(tiny_store: Path) -> ModelRuntime:
    return open_model(tiny_store / "tiny-en" / "1")


def test_pad_batch_pads_with_zeros_after_each_length() -> None:
    ids, lengths = pad_batch([[5, 6, 7], [8], [9, 10]])

    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert lengths.tolist() == [3, 1, 2]


@pytest.mark.parametrize("id_lists", [[], [[1], []]])
def test_pad_batch_refuses_what_the_graph_cannot_take(id_lists: list[list[int]]) -> None:
    with pytest.raises(ValueError):
        pad_batch(id_lists)


def test_softmax_rows_sum_to_one_and_survive_large_logits() -> None:
    probabilities = softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 1.0, 1.0]], dtype=np.float32))

    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert probabilities[0].argmax() == 0
    assert np.allclose(probabilities[1], 1 / 3)


def test_a_text_alone_and_inside_a_padded_batch_score_the_same(runtime: ModelRuntime) -> None:
    short, long = (
        runtime.tokenizer.encode("goal").ids,
        runtime.tokenizer.encode("the chef bakes bread " * 5).ids,
    )

    batch = runtime.classify([long, short, long])
    alone = runtime.classify([short])

    assert np.abs(batch[1] - alone[0]).max() < 1e-6


def test_hidden_states_have_one_row_per_token_and_h_n_per_layer_and_direction(runtime: ModelRuntime) -> None:
    id_lists = [runtime.tokenizer.encode(text).ids for text in ("goal team", "the soup was tasty today")]
    dimensions = runtime.manifest.model
    directions = 2 if dimensions["bidirectional"] else 1

    states = runtime.hidden_states(id_lists)

    assert [array.shape for array in states.per_text] == [
        (len(ids), dimensions["hidden_dim"] * directions) for ids in id_lists
    ]
    assert states.h_n.shape == (dimensions["num_layers"] * directions, 2, dimensions["hidden_dim"])
    assert states.c_n.shape == states.h_n.shape


def test_embedding_matrix_is_read_once_with_one_row_per_vocabulary_entry(runtime: ModelRuntime) -> None:
    assert runtime.embedding_matrix.shape == (
        runtime.tokenizer.vocab_size,
        runtime.manifest.model["embedding_dim"],
    )
    assert not runtime.embedding_matrix.flags.writeable
    assert np.array_equal(runtime.embeddings([3, 4]), runtime.embedding_matrix[[3, 4]])


def test_neighbors_are_sorted_and_never_pad_or_the_token_itself(runtime: ModelRuntime) -> None:
    token_id = runtime.tokenizer.token_id("goal")

    neighbors = runtime.neighbors([token_id], k=5)

    found = neighbors.ids[0].tolist()
    similarities = neighbors.similarities[0].tolist()
    assert len(found) == 5 and PAD_ID not in found and token_id not in found
    assert similarities == sorted(similarities, reverse=True)
    unit = runtime.embedding_matrix / np.linalg.norm(runtime.embedding_matrix, axis=1, keepdims=True).clip(
        1e-12
    )
    assert similarities[0] == pytest.approx(float(unit[token_id] @ unit[found[0]]), abs=1e-5)


def test_neighbors_k_is_capped_by_the_vocabulary(runtime: ModelRuntime) -> None:
    neighbors = runtime.neighbors([2], k=10_000)

    assert neighbors.ids.shape == (1, runtime.tokenizer.vocab_size - 2)


def test_golden_verification_passes_on_the_real_bundle(runtime: ModelRuntime) -> None:
    verify_golden(runtime)


def test_golden_verification_refuses_logits_that_do_not_reproduce(
    store_copy: Path, rewrite_manifest: Callable[..., None]
) -> None:
    bundle = store_copy / "tiny-en" / "1"

    def nudge_logit(manifest: dict[str, Any]) -> None:
        manifest["golden"][0]["logits"][0] += 1e-2

    rewrite_manifest(bundle, nudge_logit)
    runtime = ModelRuntime.open(load_bundle(bundle))

    with pytest.raises(BundleError, match="differ from the torch logits"):
        verify_golden(runtime)


def test_golden_verification_refuses_a_tokenizer_that_drifted(
    store_copy: Path, rewrite_manifest: Callable[..., None]
) -> None:
    bundle = store_copy / "tiny-en" / "1"

    def add_an_id(manifest: dict[str, Any]) -> None:
        manifest["golden"][0]["ids"].append(1)

    rewrite_manifest(bundle, add_an_id)

    with pytest.raises(BundleError, match="tokenizer gives other ids"):
        open_model(bundle)


def test_a_bundle_without_golden_examples_is_not_served(
    store_copy: Path, rewrite_manifest: Callable[..., None]
) -> None:
    bundle = store_copy / "tiny-zh" / "1"
    rewrite_manifest(bundle, lambda manifest: manifest.update(golden=[]))

    with pytest.raises(BundleError, match="no golden examples"):
        open_model(bundle)


def test_a_graph_for_other_labels_is_refused(store_copy: Path, rewrite_manifest: Callable[..., None]) -> None:
    bundle = store_copy / "tiny-zh" / "1"
    (bundle / "labels.json").write_text('["neg", "pos", "meh"]', encoding="utf-8")
    rewrite_manifest(bundle, refresh_checksums=True)

    with pytest.raises(BundleError, match="one value per label"):
        open_model(bundle)
