"""The texts the benchmark sends: a seeded sample of each model's own test split.

The split is rebuilt from the data source the bundle's manifest records (``Manifest.data_source``, the
same path ``export --quantize`` uses to measure accuracy), so text lengths are what the model meets in
its evaluation. A bundle without that record (e.g. the tiny test store) falls back to its golden texts.

:func:`snippet_texts` makes the *short news snippets* set: the paragraphs of 5–60 words of the news
model's test articles, where HTTP's share of the work is largest.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from service.bundle import Bundle, list_models, load_bundle

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextSample:
    model: str
    version: int
    texts: list[str]
    source: str  # where the texts came from, for the report
    name: str = ""  # the text set's name in the tables (default: the model's)

    @property
    def label(self) -> str:
        return self.name or self.model

    def lengths(self, bundle: Bundle) -> list[int]:
        return [len(bundle.tokenizer.encode(text).ids) for text in self.texts]

    def request_bodies(self, texts_per_request: int = 1) -> list[bytes]:
        """JSON bodies for ``POST /classify``: ``{"model", "text"}`` or ``{"model", "texts": [...]}``."""
        bodies = []
        for start in range(0, len(self.texts) - texts_per_request + 1, texts_per_request):
            chunk = self.texts[start : start + texts_per_request]
            payload = (
                {"model": self.model, "text": chunk[0]}
                if texts_per_request == 1
                else {
                    "model": self.model,
                    "texts": chunk,
                }
            )
            bodies.append(json.dumps(payload, ensure_ascii=False).encode())
        return bodies


def latest_bundle(store: Path, name: str) -> Bundle:
    versions = list_models(store).get(name)
    if not versions:
        raise SystemExit(
            f"model {name!r} is not in {store} (it holds: {', '.join(list_models(store)) or 'nothing'})"
        )
    return load_bundle(store / name / str(versions[-1]))


def _test_split(bundle: Bundle) -> tuple[list[str], str] | None:
    source = bundle.manifest.data_source
    if source is None:
        return None
    try:
        from training.data.source import DataSpec  # noqa: PLC0415 - only the benchmark needs the training side
    except ImportError:
        logger.warning("the training package is not importable; using %s's golden texts", bundle.name)
        return None
    texts = [example.text for example in DataSpec.of(source).load().test]
    return (texts, f"test split of {source.describe()}") if texts else None


def sample_texts(bundle: Bundle, count: int, seed: int = 13) -> TextSample:
    """``count`` texts of ``bundle``'s test split (seeded; repeated if the split is smaller)."""
    found = _test_split(bundle)
    if found is None:
        found = ([example.text for example in bundle.manifest.golden], "golden texts of the manifest")
    texts, source = found
    rng = random.Random(seed)
    chosen = rng.sample(texts, count) if count <= len(texts) else [rng.choice(texts) for _ in range(count)]
    return TextSample(bundle.name, bundle.version, chosen, f"{source}, {len(chosen)} texts (seed {seed})")


SNIPPET_WORDS = (5, 60)


def snippet_texts(bundle: Bundle, count: int, seed: int = 13) -> TextSample | None:
    """``count`` paragraphs of 5–60 words from ``bundle``'s test articles (seeded); None without any."""
    found = _test_split(bundle)
    if found is None:
        return None
    low, high = SNIPPET_WORDS
    paragraphs = [
        " ".join(paragraph.split())
        for article in found[0]
        for paragraph in article.split("\n")
        if low <= len(paragraph.split()) <= high
    ]
    if not paragraphs:
        return None
    rng = random.Random(seed)
    chosen = rng.sample(paragraphs, count) if count <= len(paragraphs) else rng.choices(paragraphs, k=count)
    source = f"paragraphs of {low}-{high} words from the {found[1]}, {len(chosen)} texts (seed {seed})"
    return TextSample(bundle.name, bundle.version, chosen, source, name=f"{bundle.name} snippets")
