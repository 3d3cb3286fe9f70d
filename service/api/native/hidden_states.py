"""POST /hidden-states."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from starlette.responses import Response

from service.api.bodies import json_body, request_body
from service.api.common import VECTOR_ERROR_RESPONSES
from service.api.deps import EngineDep
from service.api.native.answers import hidden_states_answer
from service.api.native.schemas import HiddenStatesRequest, HiddenStatesResponse
from service.api.streaming import releasing_answer

router = APIRouter(tags=["inspection"])


@router.post(
    "/hidden-states",
    response_model=HiddenStatesResponse,
    responses=VECTOR_ERROR_RESPONSES,
    openapi_extra=request_body(HiddenStatesRequest),
)
async def hidden_states(
    request: Annotated[HiddenStatesRequest, json_body(HiddenStatesRequest)], engine: EngineDep
) -> Response:
    """The LSTM's hidden state at every token (all directions) and its final h_n and c_n."""
    # built and sent within the worker's vector budget (429 with Retry-After past it, 413 if never)
    stated = await engine.hidden_states(request)
    return releasing_answer(stated.release, hidden_states_answer, stated)
