"""The ``/v2`` routes of the Open Inference Protocol: server, health, models, infer, statistics, repository.

- :data:`health_router` (always open, like ``/livez``): ``GET /v2``, ``/v2/health/live``,
  ``/v2/health/ready``.
- :data:`router` (needs the API key when one is set): model metadata, readiness, configuration,
  inference and statistics.
- :data:`repository_router` (:mod:`service.api.oip.repository`; the admin token, absent without one, like
  ``/admin``): the model repository extension, mapped onto the admin load and unload operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from service import __version__
from service.api.common import CLASSIFY_ERROR_RESPONSES, ERROR_RESPONSES, error_responses
from service.api.deps import EngineDep, RegistryDep, Services, SettingsDep
from service.api.errors import error_body
from service.api.hotpath import HotRoute, RawBody
from service.api.oip import codec, signature, statistics
from service.api.oip import infer as infer_module
from service.api.oip.repository import router as repository_router  # noqa: F401 (app.py includes it)
from service.api.oip.schemas import (
    HealthResponse,
    InferRequest,
    InferResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerMetadataResponse,
    StatisticsResponse,
)
from service.api.responses import OrjsonResponse
from service.api.validation import path_version_or_alias
from service.engine.engine import Engine
from service.engine.registry import ModelState, Registry
from service.errors import STATUS_CODES, ErrorType, ServiceError
from service.lifecycle import is_draining

SERVER_NAME = "lstm-service"
SERVER_VERSION = __version__
EXTENSIONS = ["binary_tensor_data", "classification", "model_repository", "statistics"]
ModelName = Annotated[str, Path(description="Model name.")]
# A version by number (strict decimal, as the hot route checks it) or by alias of the model's rollout:
# checked and resolved by the handler (path_version_or_alias, then the engine's router).
ModelVersion = Annotated[
    str,
    Path(
        description="Model version, by number or by alias of the model's rollout (stable, canary...).",
        json_schema_extra={"pattern": "^([1-9][0-9]{0,8}|[A-Za-z][A-Za-z0-9._-]{0,63})$"},
    ),
]


def _number(engine: Engine, name: str, version: str) -> int | None:
    return engine.router.number(name, path_version_or_alias(version))


health_router = APIRouter(tags=["open inference protocol"])
router = APIRouter(tags=["open inference protocol"])


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its ``$defs`` written in place (an OpenAPI document has no ``$defs``)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                return resolve(definitions[reference.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_INFER_BODY = {
    "requestBody": {
        "required": True,
        "description": "A JSON inference request; with the Inference-Header-Content-Length header, the "
        "JSON is followed by the binary data of the inputs that declare binary_data_size.",
        "content": {"application/json": {"schema": _inline(InferRequest.model_json_schema())}},
    }
}


# -- server and health ----------------------------------------------------------------------------------


@health_router.get("/v2", response_model=ServerMetadataResponse)
async def server_metadata() -> Response:
    """The server's name, version and the protocol extensions it supports."""
    return OrjsonResponse({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS})


@health_router.get("/v2/health/live", response_model=HealthResponse)
async def server_live(registry: RegistryDep) -> Response:
    """200 while the process answers (no model check, like /livez)."""
    return OrjsonResponse({"live": True, "ready": _ready(registry)})


@health_router.get("/v2/health/ready", response_model=HealthResponse, responses=error_responses(503))
async def server_ready(registry: RegistryDep) -> Response:
    """200 when every model is loaded and verified, as /readyz; 503 otherwise and while draining."""
    if _ready(registry):
        return OrjsonResponse({"live": True, "ready": True})
    message = "draining: the server is shutting down" if is_draining() else "not ready (see /readyz)"
    body = {"live": True, "ready": False, **error_body(ErrorType.unavailable, message)}
    return OrjsonResponse(body, STATUS_CODES[ErrorType.unavailable])


def _ready(registry: Registry) -> bool:
    return registry.ready and not is_draining()


# -- models ---------------------------------------------------------------------------------------------


@router.get("/v2/models/stats", response_model=StatisticsResponse)
async def all_statistics(engine: EngineDep) -> Response:
    """Inference counts and cumulative times of every model serving (statistics extension)."""
    runtimes = []
    for name in engine.registry.names:
        try:
            runtimes.append(engine.registry.get(name))
        except ServiceError:  # failed or loading: nothing computed
            continue
    stats = [statistics.model_stat(runtime, engine.statistics) for runtime in runtimes]
    return OrjsonResponse({"model_stats": stats})


@router.get(
    "/v2/models/{name}/stats", response_model=StatisticsResponse, responses={404: ERROR_RESPONSES[404]}
)
async def model_statistics(name: ModelName, engine: EngineDep) -> Response:
    """Inference counts and cumulative times of the model's serving version."""
    stat = statistics.model_stat(engine.registry.get(name), engine.statistics)
    return OrjsonResponse({"model_stats": [stat]})


@router.get(
    "/v2/models/{name}/versions/{version}/stats",
    response_model=StatisticsResponse,
    responses={404: ERROR_RESPONSES[404]},
)
async def version_statistics(name: ModelName, version: ModelVersion, engine: EngineDep) -> Response:
    """Inference counts and cumulative times of one version."""
    runtime = engine.registry.get(name, _number(engine, name, version))
    stat = statistics.model_stat(runtime, engine.statistics)
    return OrjsonResponse({"model_stats": [stat]})


@router.get("/v2/models/{name}", response_model=ModelMetadataResponse, responses=ERROR_RESPONSES)
async def model_metadata(name: ModelName, registry: RegistryDep) -> Response:
    """Name, versions, platform, and the inputs and outputs with their datatypes and shapes."""
    runtime = registry.get(name)
    return OrjsonResponse(signature.model_metadata(runtime, [runtime.version]))


@router.get(
    "/v2/models/{name}/versions/{version}", response_model=ModelMetadataResponse, responses=ERROR_RESPONSES
)
async def version_metadata(name: ModelName, version: ModelVersion, engine: EngineDep) -> Response:
    """Metadata of one version."""
    runtime = engine.registry.get(name, _number(engine, name, version))
    return OrjsonResponse(signature.model_metadata(runtime, [runtime.version]))


async def _model_ready(registry: Registry, name: str, version: int | None) -> Response:
    status = registry.status(name)  # 404 for an unknown model
    try:
        registry.get(name, version)
    except ServiceError as error:
        if error.error_type is ErrorType.not_found and status.state is ModelState.ready:
            raise  # a version that is not loaded
        body = {"name": name, "ready": False, **error_body(ErrorType.unavailable, error.message)}
        return OrjsonResponse(body, STATUS_CODES[ErrorType.unavailable])
    return OrjsonResponse({"name": name, "ready": True})


@router.get("/v2/models/{name}/ready", response_model=ModelReadyResponse, responses=error_responses(404, 503))
async def model_ready(name: ModelName, registry: RegistryDep) -> Response:
    """200 with ready true when the model serves; 503 with ready false while it loads or after it failed."""
    return await _model_ready(registry, name, None)


@router.get(
    "/v2/models/{name}/versions/{version}/ready",
    response_model=ModelReadyResponse,
    responses=error_responses(404, 503),
)
async def version_ready(name: ModelName, version: ModelVersion, engine: EngineDep) -> Response:
    """Readiness of one version."""
    engine.registry.status(name)  # 404 for an unknown model, before its aliases are looked at
    return await _model_ready(engine.registry, name, _number(engine, name, version))


@router.get("/v2/models/{name}/config", responses=ERROR_RESPONSES)
async def model_config(name: ModelName, registry: RegistryDep, settings: SettingsDep) -> Response:
    """Triton's model configuration: max batch size (texts per request), inputs and outputs."""
    runtime = registry.get(name)
    return OrjsonResponse(signature.model_config(runtime, settings.max_texts, runtime.version))


@router.get("/v2/models/{name}/versions/{version}/config", responses=ERROR_RESPONSES)
async def version_config(
    name: ModelName, version: ModelVersion, engine: EngineDep, settings: SettingsDep
) -> Response:
    """Triton's model configuration of one version."""
    runtime = engine.registry.get(name, _number(engine, name, version))
    return OrjsonResponse(signature.model_config(runtime, settings.max_texts, runtime.version))


# -- inference: hot routes (service.api.hotpath), their FastAPI twins generated from these declarations --


def infer_response(body: bytes, header_length: int | None) -> Response:
    """JSON alone, or JSON then binary outputs with the length of the JSON in a header."""
    if header_length is None:
        return Response(body, media_type="application/json")
    headers = {codec.HEADER_LENGTH: str(header_length)}
    return Response(body, media_type="application/octet-stream", headers=headers)


async def infer(request: RawBody, services: Services, path_params: Mapping[str, str]) -> Response:
    """Run the model on TEXT (tokenized as /classify) or INPUT_IDS with LENGTHS; JSON or binary tensors."""
    version = path_params.get("version")
    answer = await infer_module.answer(
        request.body,
        request.headers,
        path_params["name"],
        None if version is None else path_version_or_alias(version),
        services.engine,
    )
    return infer_response(*answer)


# Documented only: the handler checks the version itself (service.api.common.path_version), the same
# through both doors; the pattern is a subset of what it accepts, for clients and schema-driven fuzzers.
_INFER_PATH = {
    "name": Path(description="Model name."),
    "version": Path(
        description="Model version, by number or by alias of the model's rollout (stable, canary...).",
        json_schema_extra={"pattern": "^([1-9][0-9]{0,8}|[A-Za-z][A-Za-z0-9._-]{0,63})$"},
    ),
}


def _infer_route(path: str) -> HotRoute:
    return HotRoute(
        "POST",
        path,
        None,
        infer,
        response_model=InferResponse,
        responses=CLASSIFY_ERROR_RESPONSES,
        tags=("open inference protocol",),
        openapi_extra=_INFER_BODY,
        path_parameters=_INFER_PATH,
    )


HOT_ROUTES = (
    _infer_route("/v2/models/{name}/infer"),
    _infer_route("/v2/models/{name}/versions/{version}/infer"),
)
