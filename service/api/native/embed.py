"""POST /embed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from starlette.responses import Response

from service.api.bodies import json_body, request_body
from service.api.common import VECTOR_ERROR_RESPONSES
from service.api.deps import EngineDep
from service.api.native.answers import embed_answer
from service.api.native.schemas import EmbedRequest, EmbedResponse
from service.api.streaming import releasing_answer

router = APIRouter(tags=["inspection"])


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses=VECTOR_ERROR_RESPONSES,
    openapi_extra=request_body(EmbedRequest),
)
async def embed(request: Annotated[EmbedRequest, json_body(EmbedRequest)], engine: EngineDep) -> Response:
    """The embedding vectors the model uses for tokens or a text's tokens, and their neighbours."""
    # built and sent within the worker's vector budget (429 with Retry-After past it, 413 if never)
    embedded = await engine.embed(request, tokens=request.tokens, neighbors=request.neighbors)
    return releasing_answer(embedded.release, embed_answer, embedded)
