"""The made-up tiny data sets: learnable in seconds, the same rows for a given seed.

- ``en``: word tokens, 3 labels (sport, food, tech), made-up English sentences
- ``zh``: char tokens, 2 labels (neg, pos), made-up Chinese product reviews

The committed fixture bundles were trained on them (``tests/fixtures/data/*.csv`` hold the rows).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

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
    """``rows`` as a ``text,label`` CSV file (the format ``--data`` reads)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [(row["text"], row["label"]) for row in csv.DictReader(handle)]
