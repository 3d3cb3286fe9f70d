"""Shared fixtures. ``tiny_store``: a model store with two small *real* bundles, trained in seconds.

- ``tiny-en``: word tokens, 3 labels (sport, food, tech), made-up English sentences
- ``tiny-zh``: char tokens, 2 labels (neg, pos), made-up Chinese product reviews

Both are trained by the same code path as the real models (``training.pipeline.train_bundle``), exported
to ONNX with parity checked, and written with ``service.bundle.write_bundle``. Never mock onnxruntime.
Tests that need other shapes (2 layers, unidirectional, ...) call ``tiny_bundle(...)``.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from pathlib import Path

import pytest

_EN_WORDS = {
    "sport": "match goal team coach league striker season referee win stadium cup player".split(),
    "food": "recipe soup bread cheese chef dinner kitchen tasty flavour bake sauce noodles".split(),
    "tech": "software chip laptop code server network app robot battery phone data cloud".split(),
}
_EN_FILLER = "the a this that today really very new big our their was is and with of in".split()
_ZH_CHARS = {
    "pos": ["好", "喜欢", "满意", "推荐", "不错", "很棒", "快", "值得", "漂亮", "舒服"],
    "neg": ["差", "失望", "退货", "垃圾", "慢", "坏了", "糟糕", "难用", "后悔", "假货"],
}
_ZH_FILLER = [
    "这个",
    "东西",
    "质量",
    "物流",
    "书",
    "手机",
    "非常",
    "真的",
    "我",
    "的",
    "了",
    "，",
    "。",
    "买",
]


def tiny_examples(language: str, per_label: int = 40, seed: int = 0) -> list[tuple[str, str]]:
    """Learnable made-up (text, label) pairs: each text mixes 1–3 words of its label with filler."""
    rng = random.Random(seed)
    vocabulary, filler, joiner = (
        (_EN_WORDS, _EN_FILLER, " ") if language == "en" else (_ZH_CHARS, _ZH_FILLER, "")
    )
    rows = []
    for label, words in vocabulary.items():
        for _ in range(per_label):
            tokens = rng.sample(words, rng.randint(1, 3)) + rng.choices(filler, k=rng.randint(1, 12))
            rng.shuffle(tokens)
            rows.append((joiner.join(tokens), label))
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def tiny_dataset() -> Callable[..., list[tuple[str, str]]]:
    """``tiny_dataset("en" | "zh", per_label=40, seed=0)`` → the made-up (text, label) rows."""
    return tiny_examples


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_bundle(store, name, language="en"|"zh", tokenizer="word", **model_settings)`` → bundle folder.

    Trains on the made-up data with embedding 16, hidden 16 and a few epochs (about a second)."""
    import torch

    from training.config import TokenizerSettings, TrainSettings
    from training.data import DataSpec
    from training.model import ModelConfig
    from training.pipeline import train_bundle

    torch.set_num_threads(1)  # tiny tensors: a second thread only adds contention on a shared 2-core box
    data_folder = tmp_path_factory.mktemp("tiny-data")

    def build(
        store: Path,
        name: str,
        language: str = "en",
        tokenizer: str = "word",
        epochs: int = 12,
        baseline: bool = False,
        quantize: bool = False,
        **model: object,
    ) -> Path:
        csv_path = data_folder / f"{language}.csv"
        if not csv_path.exists():
            write_csv(csv_path, tiny_examples(language))
        settings = {"embedding_dim": 16, "hidden_dim": 16, "dropout": 0.1, "embedding_dropout": 0.0, **model}
        result = train_bundle(
            DataSpec(data=str(csv_path), seed=0),
            store,
            name,
            tokenizer=TokenizerSettings(mode=tokenizer, max_length=64, max_vocab=None),
            model=ModelConfig(**settings),
            training=TrainSettings(epochs=epochs, batch_size=16, learning_rate=1e-2, patience=epochs, seed=0),
            baseline=baseline,
            quantize=quantize,
            command=f"tests/conftest.py tiny_bundle({name!r}, language={language!r})",
        )
        return result.path

    return build


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Callable[..., Path]) -> Path:
    """A model store holding ``tiny-en/1`` (word, 3 labels) and ``tiny-zh/1`` (char, 2 labels)."""
    store = tmp_path_factory.mktemp("tiny-store")
    tiny_bundle(store, "tiny-en", language="en", tokenizer="word", baseline=True)
    tiny_bundle(store, "tiny-zh", language="zh", tokenizer="char", baseline=True)
    return store
