"""GET /livez, /readyz and /health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from service.api.deps import RegistryDep, SettingsDep
from service.api.errors import error_body
from service.api.native.schemas import LivenessResponse, NotReadyResponse, ReadinessResponse
from service.api.responses import OrjsonResponse
from service.engine.registry import ModelState, Registry
from service.errors import STATUS_CODES, ErrorType
from service.lifecycle import is_draining

router = APIRouter(tags=["health"])
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": NotReadyResponse, "description": "A model is not loaded and verified, or it drains"},
}


@router.get("/livez", response_model=LivenessResponse)
async def livez() -> Response:
    """The process answers (no model check: a failed model must not get the process restarted). The
    listener opens only once loading finished, so the first answer also means "started"."""
    return OrjsonResponse({"status": "alive"})


def _readiness(registry: Registry, policy: str) -> Response:
    statuses = registry.statuses()
    models = {
        name: {"state": status.state.value, "version": status.version, "reason": status.reason}
        | ({"failed_version": status.failed_version} if status.failed_version is not None else {})
        for name, status in statuses.items()
    }
    if is_draining():  # SIGTERM: load balancers must stop sending, though requests are still answered
        message = "draining: the server is shutting down"
        body = {"status": "draining", "models": models, **error_body(ErrorType.unavailable, message)}
        return OrjsonResponse(body, STATUS_CODES[ErrorType.unavailable])
    if registry.is_ready(policy):  # LSTM_SERVICE_READINESS: all models, any one, or the default model
        return OrjsonResponse({"status": "ready", "models": models})
    not_ready = [
        f"{name} ({status.reason or status.state.value})"
        for name, status in statuses.items()
        if status.state is not ModelState.ready
    ]
    message = "not ready: " + ("; ".join(not_ready) if not_ready else "no model in the store")
    body = {"status": "not_ready", "models": models, **error_body(ErrorType.unavailable, message)}
    return OrjsonResponse(body, STATUS_CODES[ErrorType.unavailable])


@router.get("/readyz", response_model=ReadinessResponse, responses=_NOT_READY)
async def readyz(registry: RegistryDep, settings: SettingsDep) -> Response:
    """200 when the models are loaded and verified as LSTM_SERVICE_READINESS asks (every model, any one,
    or the default model; each model's state is listed either way); 503 with the reasons, or while
    draining."""
    return _readiness(registry, settings.readiness)


@router.get("/health", response_model=ReadinessResponse, responses=_NOT_READY)
async def health(registry: RegistryDep, settings: SettingsDep) -> Response:
    """Same as /readyz, for tools that expect this name."""
    return _readiness(registry, settings.readiness)
