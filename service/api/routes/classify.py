"""POST /classify, a hot route: :data:`HOT_ROUTE` answers it past FastAPI (:mod:`service.api.hotpath`);
the FastAPI route documents it and answers when the app runs without hot routes. Both run
:func:`classify_texts` on a body parsed by :func:`service.api.bodies.parse_body`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter
from starlette.responses import Response

from service.api.answers import classify_answer
from service.api.bodies import json_body, request_body
from service.api.deps import Services, ServicesDep
from service.api.hotpath import HotRoute
from service.api.responses import OrjsonResponse
from service.api.schemas import CLASSIFY_ERROR_RESPONSES, ClassifyRequest, ClassifyResponse
from service.api.texts import prepare_texts
from service.errors import InvalidRequest

router = APIRouter(tags=["inference"])


async def classify_texts(
    request: ClassifyRequest, services: Services, path_params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The answer to a parsed request, as plain data; raises :class:`service.errors.ServiceError`."""
    runtime, encodings = await prepare_texts(
        request, services, max_texts=services.settings.max_texts, require_tokens=True, spans=False
    )
    if request.abstain_below is not None and runtime.task == "multi-label":
        raise InvalidRequest(
            f"abstain_below applies to single-label models; {runtime.name} is multi-label "
            "(each of its labels is decided by its own threshold, see GET /models/{name})"
        )
    logits, scores = await services.inference.scored(runtime, [encoding.ids for encoding in encodings])
    return classify_answer(
        runtime,
        encodings,
        scores,
        unk_ratio=request.unk_ratio,
        logits=logits if request.raw_scores else None,
        top_k=request.top_k,
        abstain_below=request.abstain_below,
    )


HOT_ROUTE = HotRoute("POST", "/classify", ClassifyRequest, classify_texts)


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=CLASSIFY_ERROR_RESPONSES,
    openapi_extra=request_body(ClassifyRequest),
)
async def classify(
    request: Annotated[ClassifyRequest, json_body(ClassifyRequest)], services: ServicesDep
) -> Response:
    """Classify one text or several: the best label, its score, and every label's score (softmax
    probabilities, or one sigmoid per label and the labels over their thresholds for a multi-label
    model); optionally only the `top_k` best, the raw logits, or no label below `abstain_below`."""
    return OrjsonResponse(await classify_texts(request, services))
