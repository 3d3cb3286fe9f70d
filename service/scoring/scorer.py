"""Texts in, one row of answers per text out: the engine's ``classify`` verb, batched by length.

:class:`Scorer` is what every way of scoring a corpus runs (``lstm-service score``'s worker processes, a
Ray Data actor, a Spark Python worker): it opens one model of a store in an :class:`Engine` of its own
(one onnxruntime thread, no micro-batcher: the batches are made here), and turns a column of values into
columns of answers in the input's order. The numbers are :meth:`Engine.classify`'s, encoded the way
``POST /classify`` encodes them (:func:`service.api.native.answers.classify_answer`): ``label``, ``score``,
every label's score, the labels over their thresholds of a multi-label model, ``truncated``, and on request
the logits and the ``<unk>`` share. A value that cannot be scored (null, not text, undecodable bytes,
blank, too long) gets no answer but a reason in ``error``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from service.engine.engine import Engine
from service.engine.memory import release_memory
from service.engine.preprocess import check_texts
from service.engine.registry import Registry
from service.engine.results import Classified, Texts
from service.engine.runtime import ModelRuntime
from service.errors import InvalidRequest
from service.scoring.columns import (
    ERROR,
    ModelIdentity,
    ScoreOptions,
    ScoringError,
    Unreadable,
    output_columns,
)
from service.settings import Settings, describe_error


def _as_text(value: object, max_chars: int) -> tuple[str | None, str | None]:
    """(the text, None) or (None, why it cannot be scored)."""
    if isinstance(value, Unreadable):
        return None, value.reason
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None, "empty (null)"
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return None, f"not valid UTF-8 (byte {error.start}: {raw[error.start : error.start + 1]!r})"
    if not isinstance(value, str):
        return None, f"not text ({type(value).__name__} {str(value)[:40]!r})"
    if not value.strip():
        return None, "empty (no characters or only whitespace)"
    if len(value) > max_chars:
        try:
            check_texts([value], ["text"], 1, max_chars)  # the engine's own limit, with its message
        except InvalidRequest as error:
            return None, error.message
    return value, None


class Scorer:
    """One model of ``store`` opened for scoring in this process (``close`` when done)."""

    def __init__(self, store: Path | str | None, options: ScoreOptions | None = None) -> None:
        self.options = options or ScoreOptions()
        where: dict[str, Any] = {} if store is None else {"model_store": Path(store)}  # None: the variable
        try:
            self.settings = Settings(
                **where,
                batching=False,
                intra_op_threads=1,
                inference_threads=1,
                max_texts=max(self.options.batch_size, 1),
            )
        except ValidationError as error:
            raise ScoringError(describe_error(error)) from None
        self._loop = asyncio.new_event_loop()
        self.runtime = self._open(self.options.model, self.options.version)
        # One batch at a time and no event loop to keep free: every model call on this thread.
        self.engine = Engine(self.settings, self._registry, inline=True)
        folder = self.settings.model_store / self.runtime.name / str(self.runtime.version)
        self.identity = ModelIdentity(
            self.runtime.name,
            self.runtime.version,
            tuple(self.runtime.labels),
            self.runtime.multi_label,
            hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
        )
        self.columns = output_columns(self.identity, self.options)

    def _open(self, name: str | None, version: int | None) -> ModelRuntime:
        from service.bundle import list_models

        available = list(list_models(self.settings.model_store))
        if name is None:
            if len(available) != 1:
                raise ScoringError(
                    f"the store {self.settings.model_store} holds {len(available)} models "
                    f"({', '.join(available) or 'none'}); choose one with --model"
                )
            name = available[0]
        if name not in available:
            raise ScoringError(
                f"no model {name!r} in {self.settings.model_store}; "
                f"it holds: {', '.join(available) or 'none'}"
            )
        self._registry = Registry(
            self.settings.model_store,
            {name: version} if version is not None else {},
            intra_op_threads=1,
            fallback=self.settings.fallback,
            public_key=self.settings.public_key(),
        )
        outcome = self._registry.reload(name, version, kind="initial")
        if not outcome.loaded:
            raise ScoringError(f"model {name} cannot score: {outcome.reason}")
        return self._registry.get(name, outcome.version)

    def close(self) -> None:
        self.engine.inference.close()
        self._loop.close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scoring -----------------------------------------------------------------------------------------

    def score(self, values: Sequence[object]) -> dict[str, Any]:
        """One answer per value, in order: ``{column: values}`` for :attr:`columns` (lists, or float
        arrays where NaN stands for no answer)."""
        count = len(values)
        texts: list[str] = []
        positions: list[int] = []
        errors: list[str | None] = [None] * count
        for position, value in enumerate(values):
            text, reason = _as_text(value, self.settings.max_text_chars)
            if text is None:
                errors[position] = reason
            else:
                texts.append(text)
                positions.append(position)
        # Texts sorted by length and cut into batches pad little (the benchmark's ceiling does the same).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        answers = _Answers(count, self.identity, self.options)
        size = self.options.batch_size
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        # one turn of the event loop for the whole call: starting it per batch cost a tenth of the time
        results = self._loop.run_until_complete(self._classify_all([[texts[i] for i in b] for b in batches]))
        for batch, outcomes in zip(batches, results, strict=True):
            if isinstance(outcomes, Classified):
                answers.add([positions[i] for i in batch], outcomes)
                continue
            for index, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, str):
                    errors[positions[index]] = outcome
                else:
                    answers.add([positions[index]], outcome)
        # onnxruntime's arena and the heap grow to the call's largest batch (tens of MB for long texts);
        # giving them back after each call keeps a worker near its loaded size, for a few ms per chunk
        self.runtime.shrink_arena()
        release_memory()
        return answers.columns(errors)

    async def _classify_all(self, batches: list[list[str]]) -> list[Classified | list[Classified | str]]:
        return [await self._classify(batch) for batch in batches]

    async def _classify(self, texts: list[str]) -> Classified | list[Classified | str]:
        """The batch's result, or each text's result or the engine's reason for refusing it: a batch that
        the engine refuses as a whole is scored text by text, so one bad text does not cost the others."""
        try:
            return await self._run(texts)
        except InvalidRequest as error:
            if len(texts) == 1:
                return [error.message]
        outcomes: list[Classified | str] = []
        for text in texts:
            try:
                outcomes.append(await self._run([text]))
            except InvalidRequest as error:
                outcomes.append(error.message)
        return outcomes

    async def _run(self, texts: list[str]) -> Classified:
        query = Texts(texts, ["text"] * len(texts), self.runtime.name, self.runtime.version, truncate=True)
        return await self.engine.classify(query)


class _Answers:
    """The answers of one :meth:`Scorer.score` call, gathered batch by batch into whole columns: the
    numbers as ``POST /classify`` encodes them (:func:`service.api.native.answers.classify_answer`)."""

    def __init__(self, count: int, identity: ModelIdentity, options: ScoreOptions) -> None:
        self.identity, self.options, self.count = identity, options, count
        width = len(identity.labels)
        self.scores = np.full((count, width), np.nan)  # float64 holds each float32 score exactly
        self.logits = np.full((count, width), np.nan) if options.logits else None
        self.truncated: list[bool | None] = [None] * count
        self.unk_ratio = np.full(count, np.nan)
        self.decided: list[list[str] | None] = [None] * count

    def add(self, positions: list[int], classified: Classified) -> None:
        self.scores[positions] = classified.scores
        if self.logits is not None:
            self.logits[positions] = classified.logits
        for position, encoding in zip(positions, classified.encodings, strict=True):
            self.truncated[position] = encoding.truncated
            if self.options.unk_ratio:
                self.unk_ratio[position] = encoding.unknown_share
        if self.identity.multi_label:
            labels = self.identity.labels
            for position, chosen in zip(positions, classified.decided(), strict=True):
                self.decided[position] = [labels[i] for i in chosen]

    def columns(self, errors: list[str | None]) -> dict[str, Any]:
        labels = self.identity.labels
        answered = ~np.isnan(self.scores[:, 0])
        best = np.argmax(np.where(answered[:, None], self.scores, -np.inf), axis=1)  # the first best on ties
        names = np.array(labels, dtype=object)[best]
        columns: dict[str, Any] = {
            "label": [
                name if ok else None for name, ok in zip(names.tolist(), answered.tolist(), strict=True)
            ],
            "score": self.scores[np.arange(self.count), best],
        }
        if self.identity.multi_label:
            columns["labels"] = self.decided
            columns["label"] = [chosen[0] if chosen else None for chosen in self.decided]
        if self.options.top_k is None:
            for index, label in enumerate(labels):
                columns[f"score_{label}"] = self.scores[:, index]
        else:
            order = np.argsort(-self.scores, axis=1, kind="stable")[:, : self.options.top_k]
            columns["top_labels"] = [
                [labels[i] for i in row] if ok else None
                for row, ok in zip(order.tolist(), answered.tolist(), strict=True)
            ]
            columns["top_scores"] = [
                np.take(scores, row).tolist() if ok else None
                for scores, row, ok in zip(self.scores, order, answered.tolist(), strict=True)
            ]
        if self.logits is not None:
            for index, label in enumerate(labels):
                columns[f"logit_{label}"] = self.logits[:, index]
        columns["truncated"] = self.truncated
        if self.options.unk_ratio:
            columns["unk_ratio"] = self.unk_ratio
        columns[ERROR] = errors
        return columns
