"""POST /explain: occlusion attributions and the prefix trajectory (the work is in
:mod:`service.engine.explain`; this module checks the request and shapes the answer)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.api.bodies import json_body, request_body
from service.api.deps import ServicesDep
from service.api.responses import OrjsonResponse
from service.api.routes.tokenize import token_list
from service.api.schemas import CLASSIFY_ERROR_RESPONSES, ExplainRequest, ExplainResponse
from service.engine.explain import Explainer, Explanation
from service.engine.inference import Inference
from service.engine.preprocess import check_texts
from service.engine.runtime import ModelRuntime
from service.errors import InvalidRequest
from service.observability.context import note_model
from service.settings import Settings

router = APIRouter(tags=["inspection"])


def _explainer(request: Request, inference: Inference, settings: Settings) -> Explainer:
    """One explainer per application (its gate bounds the explanations running at once)."""
    state = request.app.state
    explainer = getattr(state, "explainer", None)
    if explainer is None or explainer.inference is not inference:
        explainer = Explainer(inference, settings.max_batch_tokens, settings.max_batch_size)
        state.explainer = explainer
    return explainer


@router.post(
    "/explain",
    response_model=ExplainResponse,
    responses=CLASSIFY_ERROR_RESPONSES,
    openapi_extra=request_body(ExplainRequest),
)
async def explain(
    body: Annotated[ExplainRequest, json_body(ExplainRequest)], request: Request, services: ServicesDep
) -> Response:
    """Why the model chose a label: each token's occlusion attribution, optionally the prefix trajectory."""
    settings, registry, inference = services.settings, services.registry, services.inference
    check_texts([body.text], ["text"], 1, settings.max_text_chars)
    runtime = registry.get(body.model, body.version)
    note_model(runtime.name, runtime.version)
    (encoding,) = await inference.encode(runtime, [body.text], ["text"], truncate=True, require_tokens=True)
    limit = min(settings.max_explain_tokens, runtime.tokenizer.max_length)
    total = encoding.num_tokens_before_truncation
    if total > limit and not body.truncate:
        raise InvalidRequest(
            f"text: {total} tokens, but /explain explains at most {limit} (LSTM_SERVICE_MAX_EXPLAIN_TOKENS="
            f"{settings.max_explain_tokens}, model max_length {runtime.tokenizer.max_length}); "
            'send "truncate": true to explain the first tokens'
        )
    tokens = token_list(encoding)[:limit]
    explanation = await _explainer(request, inference, settings).explain(
        runtime, encoding.ids[:limit], body.label, body.trajectory
    )
    return OrjsonResponse(_answer(runtime, explanation, tokens, total))


def _answer(
    runtime: ModelRuntime, explanation: Explanation, tokens: list[dict[str, Any]], total: int
) -> dict[str, Any]:
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
