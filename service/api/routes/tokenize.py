"""POST /tokenize."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from starlette.responses import Response

from service.api.answers import token_list, tokenize_answer
from service.api.bodies import json_body, request_body
from service.api.deps import ServicesDep
from service.api.responses import OrjsonResponse
from service.api.schemas import ERROR_RESPONSES, TokenizeRequest, TokenizeResponse
from service.api.texts import prepare_texts

__all__ = ["router", "token_list"]  # token_list: also imported from here by other routes

router = APIRouter(tags=["inspection"])


@router.post(
    "/tokenize",
    response_model=TokenizeResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=request_body(TokenizeRequest),
)
async def tokenize(
    request: Annotated[TokenizeRequest, json_body(TokenizeRequest)], services: ServicesDep
) -> Response:
    """Split texts the way the model does: each token's id, text, offsets and whether it is unknown."""
    runtime, encodings = await prepare_texts(
        request, services, max_texts=services.settings.max_texts, require_tokens=False
    )
    return OrjsonResponse(tokenize_answer(runtime, encodings))
