"""Corpora for the scoring tests (tests/scoring), written at test time (nothing large is committed):
short texts made of the words of the fixture bundles' training rows, seeded, of varied lengths."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from support.stores import DATA


def words_of(data_file: str) -> list[str]:
    with (DATA / data_file).open(encoding="utf-8") as handle:
        return sorted({word for row in csv.DictReader(handle) for word in row["text"].split()})


def make_texts(count: int, seed: int = 0, data_file: str = "tiny-en.csv", joiner: str = " ") -> list[str]:
    """``count`` texts of 1 to 30 words (characters for Chinese) drawn from a fixture's vocabulary."""
    rng = random.Random(seed)
    if joiner:
        vocabulary = words_of(data_file)
    else:
        vocabulary = sorted({char for word in words_of(data_file) for char in word})
    return [joiner.join(rng.choice(vocabulary) for _ in range(rng.randint(1, 30))) for _ in range(count)]


def write_parquet(path: Path, texts: list[object], **columns: list[object]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": texts, **columns}), path, row_group_size=5_000)
    return path
