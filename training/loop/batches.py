"""Token ids → padded (ids, lengths) tensors, the exact input layout of the ONNX graph."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from service.tokenizer import PAD_ID, UNK_ID, Tokenizer


def encode_texts(tokenizer: Tokenizer, texts: Iterable[str]) -> list[list[int]]:
    """Truncated ids per text; a text without tokens becomes ``[<unk>]`` (the graph needs length >= 1)."""
    return [tokenizer.encode(text).ids or [UNK_ID] for text in texts]


def pad(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids`` (batch, longest) int64 padded with ``<pad>``=0, and ``lengths`` (batch,) int64."""
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.int64)
    ids = torch.full((len(sequences), int(lengths.max())), PAD_ID, dtype=torch.int64)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.int64)
    return ids, lengths


def batch_indices(
    lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0, length_pool: int = 50
) -> Iterator[np.ndarray]:
    """Index batches. Shuffled batches are cut from length-sorted pools of ``length_pool`` batches, so a
    batch holds texts of similar length (training pads to the longest text of its batch) while the batch
    order stays random. ``length_pool=1`` gives plain random batches: where text length differs by class
    (BBC: politics and tech run longer), length-sorted batches are also label-skewed."""
    order = np.arange(len(lengths))
    if not shuffle:
        yield from (order[start : start + batch_size] for start in range(0, len(order), batch_size))
        return
    rng = np.random.default_rng(seed)
    order = rng.permutation(order)
    pool = batch_size * max(1, length_pool)
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        if length_pool > 1:
            chunk = chunk[np.argsort([lengths[index] for index in chunk], kind="stable")]
        batches += [chunk[offset : offset + batch_size] for offset in range(0, len(chunk), batch_size)]
    for position in rng.permutation(len(batches)):
        yield batches[position]
