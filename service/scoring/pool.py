"""The worker side of ``lstm-service score --processes N``: each worker process opens one :class:`Scorer`
and turns texts into answer columns. Nothing here imports pyarrow: the command's own process reads the
input and writes the parts, so a worker holds only Python, numpy, onnxruntime and the model (pyarrow
added about 45 MB to each worker's resident memory)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.scoring.columns import ModelIdentity, ScoreOptions, ScoringError

if TYPE_CHECKING:
    from service.scoring.scorer import Scorer

_scorer: Scorer | ScoringError | None = None  # this worker process's


def open_scorer(store: Path, options: ScoreOptions) -> None:
    """The pool's initializer: open the model once per worker."""
    global _scorer
    from service.scoring.scorer import Scorer

    logging.getLogger("service").setLevel(logging.WARNING)  # a worker has nothing to say about loading
    try:
        _scorer = Scorer(store, options)
    except ScoringError as error:  # kept to be raised by the first task: the pool would only say "broken"
        _scorer = error


def _ready() -> Scorer:
    if isinstance(_scorer, ScoringError):
        raise _scorer
    assert _scorer is not None, "the worker's initializer opens the scorer"
    return _scorer


def identity() -> tuple[ModelIdentity, list[tuple[str, str]]]:
    scorer = _ready()
    return scorer.identity, scorer.columns


def score_texts(texts: list[str | Any]) -> dict[str, Any]:
    """One chunk's answer columns (:meth:`Scorer.score`), sent back to the command's process."""
    return _ready().score(texts)
