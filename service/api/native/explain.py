"""POST /explain: occlusion attributions and the prefix trajectory (the work is the engine's
:meth:`~service.engine.engine.Engine.explain`; this module decodes the request and encodes the answer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from starlette.responses import Response

from service.api.bodies import json_body, request_body
from service.api.common import CLASSIFY_ERROR_RESPONSES
from service.api.deps import EngineDep
from service.api.native.answers import token_list
from service.api.native.schemas import ExplainRequest, ExplainResponse
from service.api.responses import OrjsonResponse
from service.engine.results import Explained, Texts

router = APIRouter(tags=["inspection"])


@router.post(
    "/explain",
    response_model=ExplainResponse,
    responses=CLASSIFY_ERROR_RESPONSES,
    openapi_extra=request_body(ExplainRequest),
)
async def explain(body: Annotated[ExplainRequest, json_body(ExplainRequest)], engine: EngineDep) -> Response:
    """Why the model chose a label: each token's occlusion attribution, optionally the prefix trajectory."""
    query = Texts([body.text], ["text"], body.model, body.version, body.truncate)
    explained = await engine.explain(query, label=body.label, trajectory=body.trajectory)
    return OrjsonResponse(_answer(explained))


def _answer(result: Explained) -> dict[str, Any]:
    runtime, explanation, total = result.runtime, result.explanation, result.total
    tokens = token_list(result.encoding)[: len(explanation.ids)]
    labels = runtime.labels
    explained = [labels[index] for index in explanation.explained]
    base = explanation.base.tolist()
    for token, row in zip(tokens, explanation.attributions.tolist(), strict=True):
        token["attribution"] = row[0]
        token["attributions"] = dict(zip(explained, row, strict=True))
    answer: dict[str, Any] = {
        "model": runtime.name,
        "version": runtime.version,
        "method": "occlusion",
        "label": explained[0],
        "labels": explained,
        "score": base[explanation.explained[0]],
        "scores": dict(zip(labels, base, strict=True)),
        "tokens": tokens,
        "truncated": len(tokens) < total,
        "num_tokens": len(tokens),
        "num_tokens_before_truncation": total,
        "trajectory": None,
    }
    path = explanation.trajectory
    if path is not None:
        columns = path.scores.T.tolist()
        answer["trajectory"] = {
            "scores": dict(zip(labels, columns, strict=True)),
            "decision_point": path.decision_point,
            "flips": [
                {
                    "index": flip.index,
                    "before": [labels[index] for index in flip.before],
                    "after": [labels[index] for index in flip.after],
                }
                for flip in path.flips
            ],
        }
    return answer
