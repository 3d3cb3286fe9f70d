"""POST /embed."""

from __future__ import annotations

from typing import Any, NamedTuple

from fastapi import APIRouter
from starlette.responses import Response

from service.api.deps import InferenceDep, RegistryDep, SettingsDep
from service.api.responses import OrjsonResponse
from service.api.schemas import ERROR_RESPONSES, EmbedRequest, EmbedResponse
from service.engine.inference import Inference
from service.engine.preprocess import check_texts, is_unknown, lookup_tokens
from service.engine.runtime import ModelRuntime
from service.observability.context import note_model

router = APIRouter(tags=["inspection"])


class _Item(NamedTuple):
    id: int
    text: str
    start: int | None
    stop: int | None


async def _items(
    request: EmbedRequest, runtime: ModelRuntime, inference: Inference
) -> tuple[list[list[_Item]], list[bool]]:
    """The tokens of each result and whether its text was truncated (``tokens`` input: one result)."""
    if request.tokens is not None:
        ids = lookup_tokens(runtime, request.tokens)
        return [
            [_Item(token_id, text, None, None) for token_id, text in zip(ids, request.tokens, strict=True)]
        ], [False]
    encodings = await inference.encode(
        runtime, request.items, request.locations, request.truncate, require_tokens=False
    )
    groups = [
        [
            _Item(token_id, span.text, span.start, span.stop)
            for token_id, span in zip(e.ids, e.spans, strict=True)
        ]
        for e in encodings
    ]
    return groups, [encoding.truncated for encoding in encodings]


@router.post("/embed", response_model=EmbedResponse, responses=ERROR_RESPONSES)
async def embed(
    request: EmbedRequest, registry: RegistryDep, inference: InferenceDep, settings: SettingsDep
) -> Response:
    """The embedding vectors the model uses for tokens or a text's tokens, and their neighbours."""
    limit = settings.max_texts if request.tokens is not None else settings.max_vector_texts
    check_texts(request.items, request.locations, limit, settings.max_text_chars)
    runtime = registry.get(request.model, request.version)
    note_model(runtime.name, runtime.version)
    groups, truncated = await _items(request, runtime, inference)
    all_ids = [item.id for group in groups for item in group]
    vectors = runtime.embeddings(all_ids)  # (tokens, embedding_dim)
    neighbors = None
    if request.neighbors is not None and all_ids:
        neighbors = await inference.neighbors(runtime, all_ids, request.neighbors)
    vocabulary = runtime.tokenizer.vocabulary
    results: list[dict[str, Any]] = []
    position = 0
    for group, was_truncated in zip(groups, truncated, strict=True):
        tokens = []
        for item in group:
            entry: dict[str, Any] = {
                **item._asdict(),
                "unk": is_unknown(item.id),
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
    payload = {"model": runtime.name, "version": runtime.version, "embedding_dim": runtime.embedding_dim}
    return OrjsonResponse({**payload, "results": results})
