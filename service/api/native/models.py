"""GET /models and GET /models/{name}."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from service.api.common import ERROR_RESPONSES
from service.api.deps import RegistryDep, ServicesDep
from service.api.native.answers import model_detail, model_summary
from service.api.native.schemas import ModelDetailResponse, ModelListResponse
from service.api.responses import OrjsonResponse
from service.bundle import list_versions
from service.engine.registry import ModelStatus, Registry
from service.engine.runtime import ModelRuntime
from service.errors import ServiceError

router = APIRouter(tags=["models"])


def _serving(registry: Registry, status: ModelStatus) -> ModelRuntime | None:
    try:
        return registry.get(status.name)
    except ServiceError:  # failed or still loading: described by its status alone
        return None


@router.get("/models", response_model=ModelListResponse)
async def list_models(registry: RegistryDep) -> Response:
    """Every model of the store: state, version, labels."""
    default = registry.default_model
    models = [
        model_summary(status, _serving(registry, status), default) for status in registry.statuses().values()
    ]
    return OrjsonResponse({"default_model": default, "models": models})


@router.get("/models/{name}", response_model=ModelDetailResponse, responses={404: ERROR_RESPONSES[404]})
async def get_model(name: str, services: ServicesDep) -> Response:
    """One model: labels, tokenizer settings, dimensions, parameter counts, metrics, versions, checksums,
    and its rollout (aliases, canary weights, shadow, history of changes)."""
    registry = services.registry
    status = registry.status(name)  # 404 for a name the registry does not know, before any file access
    versions = list_versions(registry.store, status.name)
    detail = model_detail(status, _serving(registry, status), registry.default_model, versions)
    detail["rollout"] = services.engine.router.describe(status.name)
    return OrjsonResponse(detail)
