"""POST /tokenize."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from starlette.responses import Response

from service.api.bodies import json_body, request_body
from service.api.common import ERROR_RESPONSES
from service.api.deps import EngineDep
from service.api.native.answers import tokenize_answer
from service.api.native.schemas import TokenizeRequest, TokenizeResponse
from service.api.responses import OrjsonResponse

router = APIRouter(tags=["inspection"])


@router.post(
    "/tokenize",
    response_model=TokenizeResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=request_body(TokenizeRequest),
)
async def tokenize(
    request: Annotated[TokenizeRequest, json_body(TokenizeRequest)], engine: EngineDep
) -> Response:
    """Split texts the way the model does: each token's id, text, offsets and whether it is unknown."""
    return OrjsonResponse(tokenize_answer(await engine.tokenize(request)))
