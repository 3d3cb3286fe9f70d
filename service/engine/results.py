"""What the engine's verbs take and give: plain data, no wire format.

A protocol adapter decodes its request into a :class:`TextQuery` (the native request models already are
one), calls one verb of :class:`service.engine.engine.Engine`, and encodes what the verb gives back.
Results that were built within the worker's vector budget carry the ``release`` of their reservation: the
adapter calls it once the answer's bytes are sent (calling it twice is safe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from service.engine.budget import Release, released
from service.engine.explain import Explanation
from service.engine.runtime import HiddenStates, ModelRuntime, Neighbors
from service.tokenizer import Encoding


class TextQuery(Protocol):
    """Texts for one model: where each sits in the request (for error messages), which model and
    version (None: the default model, its serving version), and whether over-long texts are cut."""

    @property
    def items(self) -> list[str]: ...

    @property
    def locations(self) -> list[str]: ...

    @property
    def model(self) -> str | None: ...

    @property
    def version(self) -> int | str | None: ...

    @property
    def truncate(self) -> bool: ...


@dataclass(frozen=True)
class Texts:
    """A :class:`TextQuery` built by an adapter whose wire format has no request model of that shape."""

    items: list[str]
    locations: list[str]
    model: str | None = None
    version: int | str | None = None
    truncate: bool = True


@dataclass(frozen=True)
class Classified:
    """Texts run through the model: (texts, labels) logits and scores (softmax probabilities, or one
    sigmoid per label for a multi-label model), computed together per batch."""

    runtime: ModelRuntime
    encodings: list[Encoding]
    logits: np.ndarray
    scores: np.ndarray

    def best_labels(self) -> list[int]:
        """Per text, the index of the answer's label (-1: a multi-label model picked none)."""
        return self.runtime.best_labels(self.scores)

    def decided(self) -> list[list[int]]:
        """Multi-label: per text, the labels over their thresholds, best first."""
        return self.runtime.decide(self.scores)


@dataclass(frozen=True)
class Tokenized:
    runtime: ModelRuntime
    encodings: list[Encoding]


class EmbedToken(NamedTuple):
    """A token to embed: its id, its text, and its offsets in the text (None for ``tokens`` input)."""

    id: int
    text: str
    start: int | None
    stop: int | None


@dataclass(frozen=True)
class Embedded:
    """One group of tokens per text (or one for tokens sent as they are); ``vectors`` and ``neighbors``
    hold one row per token of all groups, in order."""

    runtime: ModelRuntime
    groups: list[list[EmbedToken]]
    truncated: list[bool]
    vectors: np.ndarray  # (tokens, embedding_dim) float32
    neighbors: Neighbors | None
    release: Release = released


@dataclass(frozen=True)
class HiddenStated:
    runtime: ModelRuntime
    encodings: list[Encoding]
    states: HiddenStates
    release: Release = released


@dataclass(frozen=True)
class ModelOutputs:
    """What :meth:`Engine.outputs` computed, batch first; None where not asked for.

    ``hidden_states`` (texts, longest, hidden x directions) is zero-padded as the graph pads it;
    ``h_n`` and ``c_n`` are (texts, layers x directions, hidden); ``c_n`` only for LSTM cells."""

    runtime: ModelRuntime
    logits: np.ndarray | None = None
    scores: np.ndarray | None = None
    best_labels: list[int] | None = None
    decided: list[list[int]] | None = None  # multi-label: the labels over their thresholds, best first
    hidden_states: np.ndarray | None = None
    h_n: np.ndarray | None = None
    c_n: np.ndarray | None = None
    release: Release = released


@dataclass(frozen=True)
class Explained:
    """An explanation of the first ``len(explanation.ids)`` tokens of ``encoding`` (of ``total``)."""

    runtime: ModelRuntime
    encoding: Encoding
    explanation: Explanation
    total: int


# The outputs a caller of Engine.outputs may want.
LOGITS, SCORES, LABELS, DECIDED, HIDDEN = "logits", "scores", "labels", "decided", "hidden"
OUTPUTS = frozenset({LOGITS, SCORES, LABELS, DECIDED, HIDDEN})


def id_lists(encodings: Sequence[Encoding]) -> list[list[int]]:
    return [encoding.ids for encoding in encodings]
