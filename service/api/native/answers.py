"""The native routes' answers, encoded from the engine's results as plain data beside the schemas that
document them (:mod:`service.api.native.schemas`): orjson serialises them, numpy arrays included."""

from __future__ import annotations

from typing import Any

from service.engine.preprocess import is_unknown
from service.engine.registry import ModelState, ModelStatus
from service.engine.results import Classified, Embedded, HiddenStated, Tokenized
from service.engine.runtime import ModelRuntime
from service.observability.context import current_alias
from service.tokenizer import Encoding


def _model(runtime: ModelRuntime) -> dict[str, Any]:
    alias = current_alias()
    if alias is None:
        return {"model": runtime.name, "version": runtime.version}
    return {"model": runtime.name, "version": runtime.version, "alias": alias}


# -- /classify --------------------------------------------------------------------------------------


def classify_answer(
    classified: Classified,
    unk_ratio: bool = False,
    *,
    raw_scores: bool = False,
    top_k: int | None = None,
    abstain_below: float | None = None,
) -> dict[str, Any]:
    """One result per text, from the engine's scores (softmax or sigmoid by task).

    ``unk_ratio``: each result also says which share of its tokens are ``<unk>`` (input drift);
    ``raw_scores``: also each label's logit; ``top_k``: only the k best labels, best first;
    ``abstain_below`` (single-label): ``label`` null when the best score is below it. A multi-label result
    also lists the labels over their thresholds (``labels``); its ``label`` is the best of those, or null."""
    runtime = classified.runtime
    labels = runtime.labels
    decided = classified.decided() if runtime.multi_label else None
    rows = classified.scores.tolist()
    raw_rows = classified.logits.tolist() if raw_scores else None
    results = []
    for index, (encoding, row) in enumerate(zip(classified.encodings, rows, strict=True)):
        best = max(range(len(labels)), key=row.__getitem__)
        order = (
            range(len(labels)) if top_k is None else sorted(range(len(labels)), key=lambda i: -row[i])[:top_k]
        )
        result: dict[str, Any] = {
            "label": labels[best],
            "score": row[best],
            "scores": {labels[i]: row[i] for i in order},
            "truncated": encoding.truncated,
        }
        if decided is not None:
            result["labels"] = [labels[i] for i in decided[index]]
            result["label"] = result["labels"][0] if result["labels"] else None
        elif abstain_below is not None and row[best] < abstain_below:
            result["label"] = None
        if raw_rows is not None:
            result["logits"] = {labels[i]: raw_rows[index][i] for i in order}
        if unk_ratio:
            result["unk_ratio"] = encoding.unknown_share
        results.append(result)
    return {**_model(runtime), "results": results}


# -- /tokenize --------------------------------------------------------------------------------------


def token_list(encoding: Encoding) -> list[dict[str, Any]]:
    """The tokens of an encoding in the wire shape of :class:`service.api.native.schemas.Token`."""
    return [
        {
            "id": token_id,
            "text": span.text,
            "start": span.start,
            "stop": span.stop,
            "unk": is_unknown(token_id),
        }
        for token_id, span in zip(encoding.ids, encoding.spans, strict=True)
    ]


def tokenize_answer(tokenized: Tokenized) -> dict[str, Any]:
    runtime, encodings = tokenized.runtime, tokenized.encodings
    results = [
        {
            "tokens": token_list(encoding),
            "truncated": encoding.truncated,
            "num_tokens": len(encoding.ids),
            "num_tokens_before_truncation": encoding.num_tokens_before_truncation,
        }
        for encoding in encodings
    ]
    return {**_model(runtime), "results": results}


# -- /hidden-states ---------------------------------------------------------------------------------


def hidden_states_answer(stated: HiddenStated) -> dict[str, Any]:
    runtime, encodings, states = stated.runtime, stated.encodings, stated.states
    # h_n, c_n: (layers * directions, batch, hidden) → per text (layers * directions, hidden)
    layers_by_directions, _, hidden_dim = states.h_n.shape
    directions = states.per_text[0].shape[1] // hidden_dim  # hidden_states: (tokens, hidden * directions)
    results = [
        {
            "tokens": token_list(encoding),
            "hidden_states": per_text,
            "h_n": states.h_n[:, row].copy(),  # copy: orjson serialises only contiguous arrays
            "c_n": None if states.c_n is None else states.c_n[:, row].copy(),  # None: a cell without one
            "truncated": encoding.truncated,
        }
        for row, (encoding, per_text) in enumerate(zip(encodings, states.per_text, strict=True))
    ]
    return {
        **_model(runtime),
        "cell": runtime.cell,
        "num_layers": layers_by_directions // directions,
        "directions": directions,
        "hidden_dim": hidden_dim,
        "results": results,
    }


# -- /embed -----------------------------------------------------------------------------------------


def embed_answer(embedded: Embedded) -> dict[str, Any]:
    """One result per group of tokens."""
    runtime, vectors, neighbors = embedded.runtime, embedded.vectors, embedded.neighbors
    groups, truncated = embedded.groups, embedded.truncated
    vocabulary = runtime.tokenizer.vocabulary
    results: list[dict[str, Any]] = []
    position = 0
    for group, was_truncated in zip(groups, truncated, strict=True):
        tokens = []
        for token in group:
            entry: dict[str, Any] = {
                **token._asdict(),
                "unk": is_unknown(token.id),
                "vector": vectors[position],
            }
            entry["neighbors"] = (
                None
                if neighbors is None
                else [
                    {"id": neighbor_id, "token": vocabulary[neighbor_id], "similarity": similarity}
                    for neighbor_id, similarity in zip(
                        neighbors.ids[position].tolist(),
                        neighbors.similarities[position].tolist(),
                        strict=True,
                    )
                ]
            )
            tokens.append(entry)
            position += 1
        results.append({"tokens": tokens, "truncated": was_truncated})
    return {**_model(runtime), "embedding_dim": runtime.embedding_dim, "results": results}


# -- /models ----------------------------------------------------------------------------------------

# Manifest sections passed through as they are (they describe the model, they are not the model).
_PASSED_THROUGH = ("parameters", "metrics", "training", "libraries", "parity")


def model_summary(
    status: ModelStatus, runtime: ModelRuntime | None, default_model: str | None
) -> dict[str, Any]:
    return {
        "name": status.name,
        "state": status.state.value,
        "version": status.version,
        "reason": status.reason,
        "default": status.name == default_model,
        "pinned": status.pinned,
        "task": runtime.manifest.task if runtime else None,
        "labels": list(runtime.labels) if runtime else None,
    }


def model_detail(
    status: ModelStatus, runtime: ModelRuntime | None, default_model: str | None, versions: list[int]
) -> dict[str, Any]:
    detail = model_summary(status, runtime, default_model)
    detail["versions"] = versions
    if runtime is None or status.state is not ModelState.ready:
        return detail | dict.fromkeys(
            (
                "tokenizer",
                "dimensions",
                *_PASSED_THROUGH,
                "checksums",
                "created_at",
                "drift",
                "thresholds",
                "calibration",
            )
        )
    manifest, tokenizer = runtime.manifest, runtime.tokenizer
    detail["tokenizer"] = {
        "mode": tokenizer.mode,
        "lowercase": tokenizer.lowercase,
        "max_length": tokenizer.max_length,
        "vocab_size": tokenizer.vocab_size,
    }
    detail["dimensions"] = dict(manifest.model)
    detail.update(
        parameters=manifest.parameters,
        metrics=manifest.metrics.to_dict(),
        training=manifest.training.to_dict(),
        libraries=dict(manifest.libraries),
        parity=manifest.parity.to_dict() if manifest.parity else None,
    )
    detail["checksums"] = dict(manifest.files)
    detail["created_at"] = manifest.created_at
    detail["drift"] = manifest.drift.to_dict() if manifest.drift is not None else None
    detail["thresholds"] = dict(manifest.thresholds) if manifest.thresholds is not None else None
    detail["calibration"] = dict(manifest.calibration) if manifest.calibration is not None else None
    return detail
