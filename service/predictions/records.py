"""Engine answers → log rows, built in the writer thread (the request path only queues a reference)."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

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


def rows(answered: Answered, mode: TextMode) -> list[dict[str, Any]]:
    """One row per text: every label's score, the answer's label(s), margin and entropy (for the queue)."""
    decided = answered.decide(answered.scores) if answered.multi_label else None
    out = []
    for item, (text, row) in enumerate(zip(answered.texts, answered.scores, strict=True)):
        values = [float(value) for value in row]
        order = sorted(range(len(values)), key=lambda index: -values[index])
        if decided is not None:
            chosen = [answered.labels[index] for index in decided[item]]
            # the least sure label decides how useful a correction is: its distance from 0.5
            margin = min(abs(value - 0.5) for value in values) * 2 if values else 1.0
            entropy = -sum(_binary_entropy(value) for value in values)
        else:
            chosen = [answered.labels[order[0]]]
            margin = values[order[0]] - (values[order[1]] if len(values) > 1 else 0.0)
            entropy = -sum(value * math.log(value) for value in values if value > 0)
        out.append(
            {
                "request_id": answered.request_id,
                "item": item,
                "created": answered.created,
                "model": answered.model,
                "version": answered.version,
                "alias": None,
                "route": answered.route,
                "text": kept_text(text, mode),
                "text_sha256": sha256(text),
                "scores": {answered.labels[index]: values[index] for index in range(len(values))},
                "labels": chosen,
                "top_label": chosen[0] if chosen else None,
                "margin": float(margin),
                "entropy": float(entropy),
                "latency_ms": answered.latency_ms,
            }
        )
    return out


def _binary_entropy(p: float) -> float:
    """Minus the entropy of one sigmoid output (so that the sum's negation is the total entropy)."""
    return sum(q * math.log(q) for q in (p, 1.0 - p) if q > 0)


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """The true labels of a logged answer (``request_id``, ``item``) or of a ``text`` for a ``model``."""

    labels: list[str]
    request_id: str | None = None
    item: int = 0
    text: str | None = None
    model: str | None = None
    source: str | None = None
