"""POST /embed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from starlette.responses import Response

from service.api.answers import EmbedToken, embed_answer
from service.api.bodies import json_body, request_body
from service.api.deps import Services, ServicesDep
from service.api.schemas import ERROR_RESPONSES, EmbedRequest, EmbedResponse
from service.api.texts import prepare_texts, resolve_model
from service.api.vector_budget import embed_cost, vector_budget
from service.engine.preprocess import lookup_tokens
from service.engine.runtime import ModelRuntime

router = APIRouter(tags=["inspection"])


async def _tokens(
    request: EmbedRequest, services: Services
) -> tuple[ModelRuntime, list[list[EmbedToken]], list[bool]]:
    """The model, the tokens of each result, and whether its text was truncated (``tokens``: one result)."""
    settings = services.settings
    if request.tokens is not None:
        runtime = resolve_model(request, services, settings.max_texts)
        ids = lookup_tokens(runtime, request.tokens)
        tokens = [
            EmbedToken(token_id, text, None, None) for token_id, text in zip(ids, request.tokens, strict=True)
        ]
        return runtime, [tokens], [False]
    runtime, encodings = await prepare_texts(
        request, services, max_texts=settings.max_vector_texts, require_tokens=False
    )
    groups = [
        [
            EmbedToken(token_id, span.text, span.start, span.stop)
            for token_id, span in zip(e.ids, e.spans, strict=True)
        ]
        for e in encodings
    ]
    return runtime, groups, [encoding.truncated for encoding in encodings]


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=request_body(EmbedRequest),
)
async def embed(request: Annotated[EmbedRequest, json_body(EmbedRequest)], services: ServicesDep) -> Response:
    """The embedding vectors the model uses for tokens or a text's tokens, and their neighbours."""
    runtime, groups, truncated = await _tokens(request, services)
    all_ids = [token.id for group in groups for token in group]

    async def answer() -> dict[str, Any]:
        vectors = runtime.embeddings(all_ids)  # (tokens, embedding_dim)
        neighbors = None
        if request.neighbors is not None and all_ids:
            neighbors = await services.inference.neighbors(runtime, all_ids, request.neighbors)
        return embed_answer(runtime, groups, truncated, vectors, neighbors)

    # built and sent within the worker's vector budget (429 with Retry-After past it, 413 if never)
    cost = embed_cost(runtime, len(all_ids), request.neighbors)
    return await vector_budget(services.settings.max_vector_bytes).answer(cost, answer)
