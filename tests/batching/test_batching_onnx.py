"""Batching never changes a result: real tiny bundles through onnxruntime, each text alone vs batched."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import onnxruntime as ort
import pytest

from service.bundle import load_bundle
from service.engine.batching import BatchLimits, MicroBatcher

CONTRACT_TOLERANCE = 1e-5  # the bundle contract: a text alone and inside a padded batch


def pad(batch: list[list[int]]) -> dict[str, np.ndarray]:
    """Right-pad with id 0 to the longest row: the graph's ``ids`` [batch, seq] and ``lengths`` [batch]."""
    lengths = np.array([len(ids) for ids in batch], dtype=np.int64)
    ids = np.zeros((len(batch), int(lengths.max())), dtype=np.int64)
    for row, token_ids in enumerate(batch):
        ids[row, : len(token_ids)] = token_ids
    return {"ids": ids, "lengths": lengths}


def texts_of_mixed_lengths(golden_texts: list[str], count: int, seed: int) -> list[str]:
    """Golden texts, their prefixes and concatenations: 1 to several hundred tokens, in random order."""
    rng = random.Random(seed)
    texts = list(golden_texts)
    while len(texts) < count:
        text = rng.choice(golden_texts)
        if rng.random() < 0.5:
            texts.append(text[: rng.randint(1, max(1, len(text)))])
        else:
            texts.append(" ".join(rng.choices(golden_texts, k=rng.randint(2, 6))))
    rng.shuffle(texts)
    return texts


@pytest.mark.parametrize("model_name", ["tiny-en", "tiny-zh"])
@pytest.mark.parametrize(("max_batch_size", "max_padding"), [(1, 0.5), (4, 0.5), (32, 0.5), (64, 1000.0)])
def test_logits_are_the_same_alone_and_in_any_batch(tiny_store, model_name, max_batch_size, max_padding):
    bundle = load_bundle(tiny_store / model_name / "1")
    session = ort.InferenceSession(str(bundle.model_path), providers=["CPUExecutionProvider"])
    golden = [example.text for example in bundle.manifest.golden]
    encoded = [
        bundle.tokenizer.encode(text).ids or [1] for text in texts_of_mixed_lengths(golden, 60, seed=7)
    ]
    assert len({len(ids) for ids in encoded}) > 10, (
        "the texts should differ in length, or padding is not tested"
    )

    alone = [session.run(["logits"], pad([ids]))[0][0] for ids in encoded]

    def run_batch(batch: list[list[int]]) -> list[np.ndarray]:
        (logits,) = session.run(["logits"], pad(batch))
        return list(logits)

    async def classify_concurrently() -> list[list[np.ndarray]]:
        rng = random.Random(max_batch_size)
        cuts = sorted(rng.sample(range(1, len(encoded)), 15))  # 16 requests of 1 to many texts
        requests = [
            encoded[start:stop] for start, stop in zip([0, *cuts], [*cuts, len(encoded)], strict=True)
        ]
        sizes: list[int] = []
        async with MicroBatcher(
            run_batch,
            BatchLimits(max_batch_size=max_batch_size, max_wait_ms=5, max_padding=max_padding),
            on_batch=lambda stats: sizes.append(stats.size),
        ) as batcher:
            results = await asyncio.gather(*(batcher.submit(request) for request in requests))
        assert max(sizes) <= max_batch_size and sum(sizes) == len(encoded)
        if max_batch_size > 1:
            assert max(sizes) > 1, "nothing was batched, so the test proves nothing"
        return results

    batched = [row for request in asyncio.run(classify_concurrently()) for row in request]
    difference = np.abs(np.stack(batched) - np.stack(alone)).max()
    assert difference <= CONTRACT_TOLERANCE, f"batching changed logits by {difference:.2e}"
