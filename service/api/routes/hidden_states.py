"""POST /hidden-states."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from starlette.responses import Response

from service.api.answers import hidden_states_answer
from service.api.bodies import json_body, request_body
from service.api.deps import ServicesDep
from service.api.schemas import ERROR_RESPONSES, HiddenStatesRequest, HiddenStatesResponse
from service.api.texts import prepare_texts
from service.api.vector_budget import hidden_states_cost, vector_budget

router = APIRouter(tags=["inspection"])


@router.post(
    "/hidden-states",
    response_model=HiddenStatesResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=request_body(HiddenStatesRequest),
)
async def hidden_states(
    request: Annotated[HiddenStatesRequest, json_body(HiddenStatesRequest)], services: ServicesDep
) -> Response:
    """The LSTM's hidden state at every token (all directions) and its final h_n and c_n."""
    runtime, encodings = await prepare_texts(
        request, services, max_texts=services.settings.max_vector_texts, require_tokens=True
    )
    cost = hidden_states_cost(runtime, [len(encoding.ids) for encoding in encodings])

    async def answer() -> dict[str, Any]:
        states = await services.inference.hidden_states(runtime, [encoding.ids for encoding in encodings])
        return hidden_states_answer(runtime, encodings, states)

    # built and sent within the worker's vector budget (429 with Retry-After past it, 413 if never)
    return await vector_budget(services.settings.max_vector_bytes).answer(cost, answer)
