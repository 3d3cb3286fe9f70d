"""``POST /predict`` (and ``POST /``) and ``GET /info``, as text-embeddings-inference's classifier routes.

TEI serves one model; these routes serve the default model. A text is scored exactly as ``/classify``
scores it (same tokenizer, same micro-batcher, same probabilities); ``raw_scores`` answers the logits.
``{"inputs": "text"}`` gets one list of ``{"label", "score"}`` (best first); a list of texts, or TEI's
batch form ``[["text"], ...]``, gets one such list per text. Not supported: sentence pairs (the models
read one text), ``truncation_direction`` (texts are always cut at the end), and the embedding, rerank and
tokenize routes of TEI; request keys TEI does not read (``huggingface_hub`` sends ``parameters``) are
ignored, as TEI ignores them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from starlette.responses import Response

from service import __version__
from service.api.bodies import json_body, request_body
from service.api.deps import RegistryDep, Services, ServicesDep, SettingsDep
from service.api.hotpath import HotRoute
from service.api.oip.infer import run_model
from service.api.oip.signature import LOGITS, PROBS
from service.api.responses import OrjsonResponse
from service.api.schemas import CLASSIFY_ERROR_RESPONSES, ERROR_RESPONSES
from service.engine.preprocess import check_texts
from service.errors import InvalidRequest, ServiceError
from service.observability import metrics
from service.observability.context import note_model

router = APIRouter(tags=["text-embeddings-inference"])
TEI_VERSION = __version__

# A text the model runs on needs a token: a character that is not whitespace (documented; the route's check
# names the text). TEI's batch form wraps each text in a list of one (a list of two would be a pair).
TeiText = Annotated[StrictStr, Field(min_length=1, json_schema_extra={"pattern": r"\S"})]
Inputs = (
    TeiText
    | Annotated[
        list[TeiText | Annotated[list[TeiText], Field(min_length=1, max_length=1)]], Field(min_length=1)
    ]
)


class PredictRequest(BaseModel):
    """TEI's ``PredictRequest``; keys it does not know are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    inputs: Inputs = Field(description='One text, a list of texts, or TEI\'s batch form [["text"], ...].')
    truncate: StrictBool | None = Field(
        None, description="Cut texts longer than the model's max_length (default: true, as /classify)."
    )
    raw_scores: StrictBool = Field(False, description="Answer the logits instead of the probabilities.")


class Prediction(BaseModel):
    label: str
    score: float


def _texts(inputs: str | list[Any]) -> tuple[list[str], bool]:
    """The texts, and whether the request was a batch (answered as a list of lists)."""
    if isinstance(inputs, str):
        return [inputs], False
    if not inputs:
        raise InvalidRequest("inputs: the list is empty")
    texts = []
    for index, item in enumerate(inputs):
        if isinstance(item, list):
            if len(item) != 1:
                raise InvalidRequest(f"inputs.{index}: sentence pairs are not supported (one text per item)")
            item = item[0]
        texts.append(item)
    return texts, True


async def predict_texts(
    request: PredictRequest, services: Services, path_params: Mapping[str, Any] | None = None
) -> Any:
    """The answer to a parsed request, as plain data (both doors' handler)."""
    registry, inference, settings = services.registry, services.inference, services.settings
    texts, batch = _texts(request.inputs)
    locations = [f"inputs.{index}" for index in range(len(texts))] if batch else ["inputs"]
    check_texts(texts, locations, settings.max_texts, settings.max_text_chars)
    runtime = registry.get()
    note_model(runtime.name, runtime.version)
    started = time.perf_counter()
    try:
        truncate = request.truncate is not False
        encodings = await inference.encode(
            runtime, texts, locations, truncate, require_tokens=True, spans=False
        )
        output = LOGITS if request.raw_scores else PROBS
        scores = (await run_model(runtime, inference, [encoding.ids for encoding in encodings], {output}))[
            output
        ]
    except ServiceError:
        metrics.observe_inference(runtime.name, runtime.version, False, time.perf_counter() - started)
        raise
    metrics.observe_inference(runtime.name, runtime.version, True, time.perf_counter() - started)
    labels = runtime.labels
    answers = []
    for row in scores.tolist():
        order = sorted(range(len(labels)), key=row.__getitem__, reverse=True)
        answers.append([{"label": labels[index], "score": row[index]} for index in order])
    return answers if batch else answers[0]


_PREDICT_DOC = "A list of {label, score} (best first) for one text; a list of such lists for several."
# Hot routes (service.api.hotpath), like /classify: TEI clients send one small request per text.
HOT_ROUTES = (
    HotRoute("POST", "/predict", PredictRequest, predict_texts),
    HotRoute("POST", "/", PredictRequest, predict_texts),
)


@router.post(
    "/predict",
    response_model=list[Prediction] | list[list[Prediction]],
    responses=CLASSIFY_ERROR_RESPONSES,
    description=_PREDICT_DOC,
    openapi_extra=request_body(PredictRequest),
)
@router.post(  # TEI answers a classifier's POST / too, so InferenceClient("http://host:port") works
    "/",
    response_model=list[Prediction] | list[list[Prediction]],
    responses=CLASSIFY_ERROR_RESPONSES,
    description=_PREDICT_DOC,
    openapi_extra=request_body(PredictRequest),
)
async def predict(
    request: Annotated[PredictRequest, json_body(PredictRequest)], services: ServicesDep
) -> Response:
    """Classify with the default model, answered as text-embeddings-inference answers."""
    return OrjsonResponse(await predict_texts(request, services))


@router.get("/info", responses={503: ERROR_RESPONSES[503]})
async def info(registry: RegistryDep, settings: SettingsDep) -> Response:
    """TEI's /info for the default model: its labels and the service's limits."""
    runtime = registry.get()
    labels = runtime.labels
    return OrjsonResponse(
        {
            "model_id": runtime.name,
            "model_sha": None,
            "model_dtype": "float32" if runtime.batch_invariant else "int8",
            "model_type": {
                "classifier": {
                    "id2label": {str(index): label for index, label in enumerate(labels)},
                    "label2id": {label: index for index, label in enumerate(labels)},
                }
            },
            "max_concurrent_requests": settings.max_queued,
            "max_input_length": runtime.tokenizer.max_length,
            "max_batch_tokens": settings.max_batch_tokens,
            "max_batch_requests": settings.max_batch_size,
            "max_client_batch_size": settings.max_texts,
            "auto_truncate": True,
            "tokenization_workers": settings.inference_threads,
            "version": TEI_VERSION,
            "sha": None,
            "docker_label": None,
            "model_version": runtime.version,
        }
    )
