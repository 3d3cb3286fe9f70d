"""POST /classify, a hot route (:mod:`service.api.hotpath`): decode, one verb, encode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.api.common import CLASSIFY_ERROR_RESPONSES
from service.api.deps import Services
from service.api.hotpath import HotRoute
from service.api.native.answers import classify_answer
from service.api.native.schemas import ClassifyRequest, ClassifyResponse


async def classify(request: ClassifyRequest, services: Services, path_params: Mapping[str, str]) -> Any:
    """Classify one text or several: the best label, its score, and every label's score (softmax
    probabilities, or one sigmoid per label and the labels over their thresholds for a multi-label
    model); optionally only the `top_k` best, the raw logits, or no label below `abstain_below`."""
    classified = await services.engine.classify(request, abstain_below=request.abstain_below)
    return classify_answer(
        classified,
        unk_ratio=request.unk_ratio,
        raw_scores=request.raw_scores,
        top_k=request.top_k,
        abstain_below=request.abstain_below,
    )


HOT_ROUTE = HotRoute(
    "POST",
    "/classify",
    ClassifyRequest,
    classify,
    response_model=ClassifyResponse,
    responses=CLASSIFY_ERROR_RESPONSES,
    tags=("inference",),
)
