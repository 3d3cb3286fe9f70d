"""Engine answers → log rows, built in the writer thread (the request path only queues a reference)."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

TextMode = Literal["full", "hash", "redacted"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_DIGITS = re.compile(r"\d")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def kept_text(text: str, mode: TextMode) -> str | None:
    """What the log stores of ``text``: all of it, nothing (``hash``: the SHA-256 column only), or the text
    with e-mail addresses replaced by ``<email>`` and every digit by ``#``."""
    if mode == "full":
        return text
    if mode == "hash":
        return None
    return _DIGITS.sub("#", _EMAIL.sub("<email>", text))


@dataclass(frozen=True, slots=True)
class Answered:
    """One answered request as the engine saw it: cheap to build (references, no copies of the scores)."""

    request_id: str
    created: float  # time.time() when answered
    model: str
    version: int
    labels: list[str]
    multi_label: bool
    decide: Any  # ModelRuntime.decide (multi-label) or None
    texts: list[str]
    scores: np.ndarray  # (texts, labels)
    latency_ms: float
    route: str
    alias: str | None = None  # the alias that chose the version, or "shadow" for a shadow run


COLUMNS = (
    "request_id", "item", "created", "model", "version", "alias", "route", "text", "text_sha256", "scores",
    "labels", "top_label", "margin", "entropy", "latency_ms",
)  # fmt: skip


def rows(answered: Answered, mode: TextMode) -> list[tuple[Any, ...]]:
    """One row per text (values in :data:`COLUMNS` order; scores and labels as JSON text): every label's
    score, the answer's label(s), and the margin and entropy the labelling queue orders by."""
    labels = answered.labels
    values = answered.scores.tolist()  # plain floats: per-row numpy calls cost more than they save here
    decided = answered.decide(answered.scores) if answered.multi_label else None
    out = []
    for item, (text, row) in enumerate(zip(answered.texts, values, strict=True)):
        if decided is not None:
            chosen = [labels[index] for index in decided[item]]
            margin = min(abs(value - 0.5) for value in row) * 2  # the least sure label's distance from 0.5
            entropy = -sum(q * math.log(q) for p in row for q in (p, 1.0 - p) if q > 0)
        else:
            best = max(range(len(row)), key=row.__getitem__)
            chosen = [labels[best]]
            second = max((value for index, value in enumerate(row) if index != best), default=0.0)
            margin = row[best] - second
            entropy = -sum(p * math.log(p) for p in row if p > 0)
        scores = orjson.dumps(dict(zip(labels, row, strict=True))).decode()
        out.append(
            (
                answered.request_id, item, answered.created, answered.model, answered.version, answered.alias,
                answered.route, kept_text(text, mode), sha256(text), scores, orjson.dumps(chosen).decode(),
                chosen[0] if chosen else None, margin, entropy, answered.latency_ms,
            )
        )  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """The true labels of a logged answer (``request_id``, ``item``) or of a ``text`` for a ``model``."""

    labels: list[str]
    request_id: str | None = None
    item: int = 0
    text: str | None = None
    model: str | None = None
    source: str | None = None
