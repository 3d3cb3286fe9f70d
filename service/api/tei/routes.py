"""``POST /predict`` (and ``POST /``) and ``GET /info``, as text-embeddings-inference's classifier routes.

TEI serves one model: ``/predict``, ``/`` and ``/info`` serve the default model, and the same routes under
``/tei/{name}`` (``POST /tei/{name}``, ``POST /tei/{name}/predict``, ``GET /tei/{name}/info``) serve the
model named in the path, so a TEI client reaches any model of the store by its base URL
(``InferenceClient(model="http://host:8000/tei/tickets")``). A text is scored exactly as ``/classify``
scores it (same tokenizer, same micro-batcher, same probabilities); ``raw_scores`` answers the logits.
``{"inputs": "text"}`` gets one list of ``{"label", "score"}`` (best first); a list of texts, or TEI's
batch form ``[["text"], ...]``, gets one such list per text. Not supported: sentence pairs (the models
read one text), ``truncation_direction`` (texts are always cut at the end), and the embedding, rerank and
tokenize routes of TEI; request keys TEI does not read (``huggingface_hub`` sends ``parameters``) are
ignored, as TEI ignores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from service import __version__
from service.api.common import CLASSIFY_ERROR_RESPONSES, ERROR_RESPONSES
from service.api.deps import RegistryDep, Services, SettingsDep
from service.api.hotpath import HotRoute
from service.api.responses import OrjsonResponse
from service.api.tei.schemas import Prediction, PredictRequest
from service.engine.results import Texts
from service.engine.runtime import ModelRuntime
from service.errors import InvalidRequest
from service.settings import Settings

router = APIRouter(tags=["text-embeddings-inference"])
ModelName = Annotated[str, Path(description="Model name.")]
TEI_VERSION = __version__


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


async def predict(request: PredictRequest, services: Services, path_params: Mapping[str, str]) -> Any:
    """Classify with the default model, answered as text-embeddings-inference answers: a list of
    {label, score} (best first) for one text; a list of such lists for several."""
    texts, batch = _texts(request.inputs)
    locations = [f"inputs.{index}" for index in range(len(texts))] if batch else ["inputs"]
    query = Texts(texts, locations, path_params.get("name"), truncate=request.truncate is not False)
    classified = await services.engine.classify(query)
    labels = classified.runtime.labels
    values = classified.logits if request.raw_scores else classified.scores
    answers = []
    for row in values.tolist():
        order = sorted(range(len(labels)), key=row.__getitem__, reverse=True)
        answers.append([{"label": labels[index], "score": row[index]} for index in order])
    return answers if batch else answers[0]


def _predict_route(path: str) -> HotRoute:
    """``path`` answered as TEI's ``POST /predict``; ``{name}`` in it names the model (else the default)."""
    return HotRoute(
        "POST",
        path,
        PredictRequest,
        predict,
        response_model=list[Prediction] | list[list[Prediction]],
        responses=CLASSIFY_ERROR_RESPONSES,
        tags=("text-embeddings-inference",),
        path_parameters={"name": Path(description="Model name (the default model without one).")},
    )


# Hot routes (service.api.hotpath), like /classify: TEI clients send one small request per text. TEI
# answers a classifier's POST / too, so InferenceClient("http://host:port") works.
HOT_ROUTES = (
    _predict_route("/predict"),
    _predict_route("/"),
    _predict_route("/tei/{name}/predict"),
    _predict_route("/tei/{name}"),
)


@router.get("/info", responses={503: ERROR_RESPONSES[503]})
async def info(registry: RegistryDep, settings: SettingsDep) -> Response:
    """TEI's /info for the default model: its labels and the service's limits."""
    return OrjsonResponse(_info(registry.get(), settings))


@router.get("/tei/{name}/info", responses={404: ERROR_RESPONSES[404], 503: ERROR_RESPONSES[503]})
async def model_info(name: ModelName, registry: RegistryDep, settings: SettingsDep) -> Response:
    """TEI's /info for the model named in the path."""
    return OrjsonResponse(_info(registry.get(name), settings))


def _info(runtime: ModelRuntime, settings: Settings) -> dict[str, Any]:
    labels = runtime.labels
    return {
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
